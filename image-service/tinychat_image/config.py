"""image-service settings, read from the environment (field name = variable name, lower case)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from tinychat_common.settings import HttpUrl, LogPath, RedisSettings, RedisUrl, ServiceSettings

Provider = Literal["swarmui", "openai", "none"]

_SIZE = re.compile(r"^(\d{2,5}x\d{2,5}|auto)$")


class ImageSettings(ServiceSettings, RedisSettings):
    port: int = 8002

    image_provider: Provider = "swarmui"

    swarmui: HttpUrl = "http://localhost:7801"
    image_model: str = Field(default="Flux/flux1-schnell-fp8", min_length=1)
    image_cfgscale: float = Field(default=1.0, ge=0.0, le=100.0)
    image_steps: int = Field(default=6, ge=1, le=500)
    image_width: int = Field(default=1024, ge=64, le=8192)
    image_height: int = Field(default=1024, ge=64, le=8192)
    image_seed: int = -1
    image_timeout: float = Field(default=300.0, gt=0)
    # Hosts, besides the image API's own, that an image URL in its answer may point to
    # (`*.` for subdomains); OpenAI's DALL·E serves its images from Azure blob storage.
    image_download_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*.blob.core.windows.net"]
    )

    @field_validator("image_download_hosts", mode="before")
    @classmethod
    def _download_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    openai_image_api_key: SecretStr = SecretStr("")
    openai_api_key: SecretStr = SecretStr("")  # the fallback when OPENAI_IMAGE_API_KEY is empty
    openai_image_api_base: HttpUrl = "https://api.openai.com/v1"
    openai_image_model: str = Field(default="dall-e-3", min_length=1)
    openai_image_size: str = "1024x1024"

    max_concurrent_images: int = Field(default=2, ge=1)
    redis_url: RedisUrl = ""
    max_image_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=10_000)
    # Worker processes for Pillow and base64 work (0: threads, which share the GIL with the
    # event loop and make other streams stutter while an image is processed).
    image_worker_processes: int = Field(default=2, ge=0, le=64)
    image_connect_timeout: float = Field(default=10.0, gt=0)
    chat_log: LogPath = ""
    max_message_length: int = Field(default=262144, gt=0)

    @field_validator("openai_image_size")
    @classmethod
    def _size(cls, value: str) -> str:
        value = value.strip().lower()
        if not _SIZE.match(value):
            raise ValueError("must be WIDTHxHEIGHT (e.g. 1024x1024) or auto")
        return value

    @model_validator(mode="after")
    def _openai_needs_a_key(self) -> ImageSettings:
        official = urlsplit(self.openai_image_api_base).hostname == "api.openai.com"
        if self.image_provider == "openai" and official and not self.image_api_key:
            raise ValueError(
                "IMAGE_PROVIDER=openai needs OPENAI_IMAGE_API_KEY (or OPENAI_API_KEY) for api.openai.com"
            )
        return self

    @property
    def image_api_key(self) -> str:
        """OPENAI_IMAGE_API_KEY, or OPENAI_API_KEY when it is empty."""
        return self.openai_image_api_key.get_secret_value() or self.openai_api_key.get_secret_value()

    @property
    def enabled(self) -> bool:
        return self.image_provider != "none"

    @property
    def model_name(self) -> str:
        if self.image_provider == "openai":
            return self.openai_image_model
        if self.image_provider == "swarmui":
            return self.image_model
        return ""
