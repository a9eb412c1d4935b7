"""What can go wrong in chat-service, each with a status, a code and a readable message.

    TinyChatError (tinychat_common.errors)
    ├── TitlesOff                     409 titles_off
    ├── BadRequest
    │   ├── InvalidImage              400 invalid_image
    │   └── ImageTooLarge             413 image_too_large
    ├── UpstreamError                 502 upstream_error
    │   ├── UpstreamAuthFailed        502 upstream_auth_failed
    │   ├── UpstreamModelNotFound     502 upstream_model_not_found
    │   ├── NoTitle                   502 no_title
    │   ├── UpstreamParameterRefused  502 upstream_parameter_refused (temperature, max_tokens)
    │   ├── UpstreamRejected          502 upstream_rejected     (another 4xx, e.g. context too long)
    │   ├── UpstreamRateLimited       503 upstream_rate_limited
    │   ├── UpstreamUnavailable       502 upstream_unavailable  (5xx, cannot connect)
    │   ├── UpstreamConnectionLost    502 upstream_connection_lost
    │   └── UpstreamBadResponse       502 upstream_bad_response
    └── UpstreamTimeout               504 upstream_timeout
        └── UpstreamStalled           504 upstream_stalled      (silent mid-stream)

upstream.py is the one place that turns aiohttp errors and upstream answers into these.
"""

from __future__ import annotations

# UpstreamError and UpstreamTimeout are re-exported: this module draws the whole tree.
from tinychat_common.errors import BadRequest, TinyChatError
from tinychat_common.errors import UpstreamError as UpstreamError
from tinychat_common.errors import UpstreamTimeout as UpstreamTimeout


class InvalidImage(BadRequest):
    code = "invalid_image"
    default_message = "The attached image could not be read."


class ImageTooLarge(BadRequest):
    status = 413
    code = "image_too_large"
    default_message = "The attached image is too large."


class UpstreamAuthFailed(UpstreamError):
    code = "upstream_auth_failed"
    default_message = "The model API rejected the API key. Check OPENAI_API_KEY."


class UpstreamModelNotFound(UpstreamError):
    code = "upstream_model_not_found"
    default_message = "The model API does not offer this model."


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"
    default_message = "The model API rejected the request."


class TitlesOff(TinyChatError):
    """Titles are off for this model's endpoint (CHAT_TITLES, or the endpoint's `titles`)."""

    status = 409
    code = "titles_off"
    default_message = "Titles from the model are off for this endpoint."


class NoTitle(UpstreamError):
    code = "no_title"
    default_message = "The model answered no usable title."


class UpstreamParameterRefused(UpstreamError):
    """A model refuses a parameter that others take (o-series: `temperature`, `max_tokens`).
    Says which setting sends the right thing; chat-service also adapts on its own after it."""

    code = "upstream_parameter_refused"
    default_message = "The model refused a parameter of the request."

    def __init__(self, parameter: str, model: str, detail: str) -> None:
        self.parameter = parameter
        self.model = model
        setting = (
            '"temperature": false'
            if parameter == "temperature"
            else '"max_tokens_param": "max_completion_tokens"'
        )
        super().__init__(
            f"The model '{model}' does not accept `{parameter}` ({detail}). TinyChat adapts from now "
            f'on; send again. To make it permanent, set {{"{model}": {{{setting}}}}} in '
            "CHAT_MODEL_SETTINGS (or the endpoint's model_settings)."
        )


class UpstreamRateLimited(UpstreamError):
    # 503 rather than 429: our caller did nothing wrong, the provider is throttling us.
    status = 503
    code = "upstream_rate_limited"
    default_message = "The model API is rate limiting requests; try again in a moment."


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    default_message = "The model API is not available right now."


class UpstreamConnectionLost(UpstreamError):
    code = "upstream_connection_lost"
    default_message = "The connection to the model API broke before the answer was complete."


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"
    default_message = "The model API sent something that is not a valid answer."


class UpstreamStalled(UpstreamTimeout):
    code = "upstream_stalled"
    default_message = "The model API stopped sending in the middle of the answer."
