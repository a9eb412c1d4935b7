"""chat-service settings, read from the environment (field name = variable name, lower case)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from tinychat_common.settings import HttpUrl, LogPath, ServiceSettings

from .endpoint_config import EndpointConfig, ModelQuirks, parse_model_settings, read_endpoints

AUTO_MODELS = "auto"
DEFAULT_MODEL_LIST = "gpt-3.5-turbo,gpt-4,gpt-4-turbo"


class ChatSettings(ServiceSettings):
    port: int = 8001

    openai_api_url: HttpUrl = "https://api.openai.com/v1"
    openai_api_key: SecretStr = SecretStr("")
    default_model: str = Field(default="gpt-3.5-turbo", min_length=1)
    # A comma list (DEFAULT_MODEL is added first when missing), or `auto` to ask the API.
    available_models: str = ""
    default_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_message_length: int = Field(default=262144, gt=0)
    max_conversation_history: int = Field(default=50, gt=0)
    max_image_size_mb: float = Field(default=10, gt=0)
    chat_log: LogPath = ""

    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_first_byte_timeout: float = Field(default=60.0, gt=0)
    upstream_idle_timeout: float = Field(default=120.0, gt=0)
    models_cache_seconds: float = Field(default=60.0, ge=0)

    # Several endpoints (see endpoints.py): JSON inline, or a mounted file; either replaces
    # OPENAI_API_URL, OPENAI_API_KEY and AVAILABLE_MODELS.
    chat_endpoints: str = ""
    chat_endpoints_file: str = ""
    # Per-model quirks, JSON: {"o3-mini": {"temperature": false, "max_tokens_param": "max_completion_tokens"}}
    chat_model_settings: str = ""
    # Short titles from the model after a conversation's first answer (OPENAI_API_URL's
    # endpoint; the others say `titles` in their entry). auto: on unless a key is set.
    chat_titles: Literal["auto", "on", "off"] = "auto"

    _endpoints: list[EndpointConfig] = PrivateAttr(default_factory=list)
    _model_settings: dict[str, ModelQuirks] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _models_listed(self) -> ChatSettings:
        if not self.available_models.strip():
            self.available_models = DEFAULT_MODEL_LIST
        return self

    @model_validator(mode="after")
    def _endpoints_read(self) -> ChatSettings:
        self._endpoints = read_endpoints(self.chat_endpoints, self.chat_endpoints_file)
        self._model_settings = parse_model_settings(self.chat_model_settings)
        return self

    @property
    def endpoint_configs(self) -> list[EndpointConfig]:
        return self._endpoints

    @property
    def model_settings(self) -> dict[str, ModelQuirks]:
        return self._model_settings

    @property
    def titles_enabled(self) -> bool:
        if self.chat_titles == "auto":
            return not self.openai_api_key.get_secret_value()
        return self.chat_titles == "on"

    @property
    def discover_models(self) -> bool:
        return self.available_models.strip().lower() == AUTO_MODELS

    @property
    def model_list(self) -> list[str]:
        """The configured models, DEFAULT_MODEL first if it was missing, without duplicates."""
        named = [m.strip() for m in self.available_models.split(",") if m.strip()]
        if self.default_model not in named:
            named.insert(0, self.default_model)
        return list(dict.fromkeys(named))

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_size_mb * 1024 * 1024)
