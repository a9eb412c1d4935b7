"""What can go wrong in image-service, each with a status, a code and a readable message.

    TinyChatError (tinychat_common.errors)
    ├── BadRequest
    │   └── EmptyPrompt               400 empty_prompt
    ├── ServiceUnavailable
    │   └── ImagesDisabled            503 images_disabled      (IMAGE_PROVIDER=none)
    ├── UpstreamError
    │   ├── ProviderUnavailable       502 provider_unavailable (cannot connect, 5xx)
    │   ├── ProviderAuthFailed        502 provider_auth_failed
    │   ├── ProviderRateLimited       503 provider_rate_limited
    │   ├── ProviderRefused           422 provider_refused     (content policy, bad size, other 4xx)
    │   ├── ProviderBadResponse       502 provider_bad_response (not JSON, no image, broken socket)
    │   ├── ImageTooLarge             502 image_too_large      (download cap, decompression bomb)
    │   ├── NotAnImage                502 not_an_image
    │   └── ImageProcessingFailed     502 image_processing_failed (a worker process died)
    └── UpstreamTimeout
        └── ImageTimeout              504 image_timeout        (IMAGE_TIMEOUT passed)

swarmui.py and openai_images.py turn their party's answers and aiohttp's errors into these;
postprocess.py raises the last two.
"""

from __future__ import annotations

from tinychat_common.errors import BadRequest, ServiceUnavailable, UpstreamError, UpstreamTimeout


class EmptyPrompt(BadRequest):
    code = "empty_prompt"
    default_message = "Say what the image should show, e.g. /image a lighthouse at dusk."


class ImagesDisabled(ServiceUnavailable):
    code = "images_disabled"
    default_message = "Image generation is not configured on this server (IMAGE_PROVIDER=none)."


class ProviderUnavailable(UpstreamError):
    code = "provider_unavailable"
    default_message = "The image provider is not available right now."


class ProviderAuthFailed(UpstreamError):
    code = "provider_auth_failed"
    default_message = "The image provider rejected the API key."


class ProviderRateLimited(UpstreamError):
    status = 503
    code = "provider_rate_limited"
    default_message = "The image provider is rate limiting requests; try again in a moment."


class ProviderRefused(UpstreamError):
    status = 422
    code = "provider_refused"
    default_message = "The image provider refused this request."


class ProviderBadResponse(UpstreamError):
    code = "provider_bad_response"
    default_message = "The image provider sent something that is not a valid answer."


class ImageTooLarge(UpstreamError):
    code = "image_too_large"
    default_message = "The generated image is too large to process."


class NotAnImage(UpstreamError):
    code = "not_an_image"
    default_message = "The image provider sent data that is not an image."


class ImageTimeout(UpstreamTimeout):
    code = "image_timeout"
    default_message = "The image took too long to generate."


class ImageProcessingFailed(UpstreamError):
    code = "image_processing_failed"
    default_message = "The image could not be processed; try again."
