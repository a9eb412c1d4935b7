"""Several OpenAI-compatible endpoints at once, each with its own URL, key and models.

Without CHAT_ENDPOINTS / CHAT_ENDPOINTS_FILE there is one endpoint, OPENAI_API_URL, and
model ids are the API's own, exactly as before. With them, every model id is
`<endpoint>/<model>` (the endpoint's name cannot hold a `/`, so the id is never ambiguous,
even for models whose own ids have slashes), and the UI groups the models by endpoint.
Keys stay here: the gateway and the browser only ever see names and model ids.

The file (or the variable) is JSON:

    {"endpoints": [
      {"name": "local", "label": "Ollama", "url": "http://ollama:11434/v1", "models": "auto"},
      {"name": "openai", "url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
       "models": ["gpt-4o", "o3-mini"], "titles": false,
       "model_settings": {"o3-mini": {"temperature": false,
                                      "max_tokens_param": "max_completion_tokens"}}}]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from tinychat_common.settings import HttpUrl


class ModelQuirks(BaseModel):
    """What one model accepts: o-series models refuse `temperature` and want
    `max_completion_tokens` instead of `max_tokens`."""

    model_config = ConfigDict(extra="forbid")

    temperature: bool = True
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


DEFAULT_QUIRKS = ModelQuirks()


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    url: HttpUrl
    api_key: SecretStr = SecretStr("")
    api_key_env: str = Field(default="", description="The variable that holds the key instead.")
    models: list[str] | Literal["auto"] = "auto"
    label: str = ""
    # None: titles on for an endpoint without a key (a local server), off for one with a
    # key, which usually bills every call.
    titles: bool | None = None
    model_settings: dict[str, ModelQuirks] = Field(default_factory=dict)

    def key(self) -> str:
        return self.api_key.get_secret_value() or os.environ.get(self.api_key_env, "")


class EndpointList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[EndpointConfig] = Field(min_length=1)


def _problem(exc: ValidationError) -> str:
    """The first thing wrong, without echoing any value (a value may be a key)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the document"
    return f"{where}: {'unknown field' if err['type'] == 'extra_forbidden' else err['msg']}"


def parse_endpoints(text: str, source: str) -> list[EndpointConfig]:
    """Read the endpoint list; a problem is one ValueError line naming `source`."""
    try:
        parsed = EndpointList.model_validate_json(text)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise ValueError(f"{source} is not valid JSON ({exc.errors()[0]['msg']})") from None
        raise ValueError(f"{source}: {_problem(exc)}") from None
    names = [e.name for e in parsed.endpoints]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ValueError(f"{source}: the endpoint name '{duplicate}' is used twice")
    for endpoint in parsed.endpoints:
        if endpoint.api_key_env and endpoint.api_key_env not in os.environ:
            raise ValueError(
                f"{source}: endpoint '{endpoint.name}' takes its key from {endpoint.api_key_env}, "
                "which is not set"
            )
        if isinstance(endpoint.models, list) and not [m for m in endpoint.models if m.strip()]:
            raise ValueError(f"{source}: endpoint '{endpoint.name}' lists no models (or say \"auto\")")
    return parsed.endpoints


def read_endpoints(inline: str, path: str) -> list[EndpointConfig]:
    if inline.strip() and path.strip():
        raise ValueError("set CHAT_ENDPOINTS or CHAT_ENDPOINTS_FILE, not both")
    if inline.strip():
        return parse_endpoints(inline, "CHAT_ENDPOINTS")
    if path.strip():
        try:
            text = Path(path.strip()).read_text()
        except OSError as exc:
            raise ValueError(f"CHAT_ENDPOINTS_FILE={path!r} cannot be read: {exc.strerror}") from None
        return parse_endpoints(text, f"CHAT_ENDPOINTS_FILE ({path.strip()})")
    return []


def parse_model_settings(text: str) -> dict[str, ModelQuirks]:
    if not text.strip():
        return {}
    try:
        raw = EndpointConfig.model_validate({"name": "x", "url": "http://x", "model_settings": _json(text)})
    except ValidationError as exc:
        raise ValueError(f"CHAT_MODEL_SETTINGS: {_problem(exc)}") from None
    return raw.model_settings


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CHAT_MODEL_SETTINGS is not valid JSON ({exc.msg})") from None
