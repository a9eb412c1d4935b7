"""Which models a request may name: the configured list, or the API's own (`auto`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from tinychat_common.errors import TinyChatError, UnknownModel

from .config import ChatSettings
from .upstream import UpstreamClient

log = logging.getLogger(__name__)

# After a failed discovery, ask again sooner than after a good one.
RETRY_AFTER_FAILURE_SECONDS = 10.0


@dataclass(frozen=True)
class ModelChoice:
    models: list[str]
    default_model: str


class ModelCatalog:
    """One endpoint's models: a fixed list (`models`), or the API's own when None."""

    def __init__(
        self, upstream: UpstreamClient, *, models: list[str] | None, default_model: str, cache_seconds: float
    ) -> None:
        self._upstream = upstream
        self._default = default_model
        self._cache_seconds = cache_seconds
        self._fixed = None if models is None else ModelChoice(models, default_model)
        self._cached: ModelChoice | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: ChatSettings, upstream: UpstreamClient) -> ModelCatalog:
        """The single OPENAI_API_URL endpoint's catalog: AVAILABLE_MODELS and DEFAULT_MODEL."""
        return cls(
            upstream,
            models=None if settings.discover_models else settings.model_list,
            default_model=settings.default_model,
            cache_seconds=settings.models_cache_seconds,
        )

    async def current(self) -> ModelChoice:
        if self._fixed is not None:
            return self._fixed
        if self._cached is not None and time.monotonic() < self._expires:
            return self._cached
        async with self._lock:  # one discovery at a time, however many requests wait
            if self._cached is None or time.monotonic() >= self._expires:
                await self._discover()
        assert self._cached is not None
        return self._cached

    async def resolve(self, requested: str | None) -> str:
        """The model to use for a request, or UnknownModel listing the choices."""
        choice = await self.current()
        if not requested:
            return choice.default_model
        if requested not in choice.models:
            raise UnknownModel(f"Unknown model '{requested}'. Available models: {', '.join(choice.models)}.")
        return requested

    async def _discover(self) -> None:
        default = self._default
        fallback = ModelChoice([default] if default else [], default)
        try:
            found = list(dict.fromkeys(await self._upstream.list_models()))
        except TinyChatError as exc:
            log.warning("model discovery failed (%s); offering only DEFAULT_MODEL=%s", exc.message, default)
            self._store(fallback, RETRY_AFTER_FAILURE_SECONDS)
            return
        if not found:
            log.warning("the model API lists no models; offering only DEFAULT_MODEL=%s", default)
            self._store(fallback, RETRY_AFTER_FAILURE_SECONDS)
            return
        if default in found:
            found.remove(default)
            found.insert(0, default)
        else:
            # An unreachable default would fail every request that does not pick a model.
            if default:
                log.warning(
                    "DEFAULT_MODEL=%s is not offered by the model API; defaulting to %s", default, found[0]
                )
            default = found[0]
        self._store(ModelChoice(found, default), self._cache_seconds)

    def _store(self, choice: ModelChoice, seconds: float) -> None:
        self._cached = choice
        self._expires = time.monotonic() + seconds
