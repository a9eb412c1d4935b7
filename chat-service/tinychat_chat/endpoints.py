"""Several endpoints at run time: their catalogs as one model choice, and a request's
model id back to its endpoint (the configuration is read in endpoint_config.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tinychat_common.errors import UnknownModel

from .catalog import ModelCatalog, ModelChoice
from .endpoint_config import DEFAULT_QUIRKS, ModelQuirks

if TYPE_CHECKING:  # for the annotation only: the client is built in app.py
    from .upstream import UpstreamClient


@dataclass
class Endpoint:
    name: str  # "" for the single OPENAI_API_URL endpoint: its ids carry no prefix
    label: str
    upstream: UpstreamClient
    catalog: ModelCatalog
    titles: bool
    quirks: dict[str, ModelQuirks] = field(default_factory=dict)

    def public_id(self, model: str) -> str:
        return f"{self.name}/{model}" if self.name else model


@dataclass(frozen=True)
class Resolved:
    endpoint: Endpoint
    model: str  # the API's own id
    public_id: str


class Endpoints:
    """Every endpoint's models as one choice, and a request's model back to its endpoint."""

    def __init__(self, endpoints: list[Endpoint], default_model: str, shared_quirks: dict[str, ModelQuirks]):
        self.endpoints = endpoints
        self.by_name = {e.name: e for e in endpoints}
        self.default_model = default_model
        self.shared_quirks = shared_quirks
        self.learned: dict[tuple[str, str], ModelQuirks] = {}

    async def choices(self) -> list[ModelChoice]:
        return list(await asyncio.gather(*(e.catalog.current() for e in self.endpoints)))

    async def current(self) -> ModelChoice:
        return self._merged(await self.choices())

    async def snapshot(self) -> tuple[ModelChoice, list[dict[str, Any]]]:
        """The merged choice and the models grouped by endpoint, from one look at each."""
        choices = await self.choices()
        return self._merged(choices), self._groups(choices)

    def _merged(self, choices: list[ModelChoice]) -> ModelChoice:
        if len(self.endpoints) == 1 and not self.endpoints[0].name:
            return choices[0]
        models = [e.public_id(m) for e, c in zip(self.endpoints, choices, strict=True) for m in c.models]
        default = self.default_model if self.default_model in models else (models[0] if models else "")
        return ModelChoice(models, default)

    def _groups(self, choices: list[ModelChoice]) -> list[dict[str, Any]]:
        return [
            {
                "endpoint": e.name,
                "label": e.label,
                "titles": e.titles,
                "models": [e.public_id(m) for m in c.models],
            }
            for e, c in zip(self.endpoints, choices, strict=True)
        ]

    async def resolve(self, requested: str | None) -> Resolved:
        choice = await self.current()
        public = requested or choice.default_model
        if public not in choice.models:
            raise UnknownModel(f"Unknown model '{public}'. Available models: {', '.join(choice.models)}.")
        if len(self.endpoints) == 1 and not self.endpoints[0].name:
            return Resolved(self.endpoints[0], public, public)
        name, _, model = public.partition("/")
        return Resolved(self.by_name[name], model, public)

    def quirks(self, resolved: Resolved) -> ModelQuirks:
        endpoint, model = resolved.endpoint, resolved.model
        learned = self.learned.get((endpoint.name, model))
        if learned is not None:
            return learned
        return endpoint.quirks.get(model) or self.shared_quirks.get(model) or DEFAULT_QUIRKS

    def learn(self, resolved: Resolved, refused: str) -> None:
        """The API refused a parameter for this model: leave it out (or rename it) from now
        on, on this replica; the error told the user how to make that permanent."""
        current = self.quirks(resolved)
        change = (
            {"temperature": False}
            if refused == "temperature"
            else {"max_tokens_param": "max_completion_tokens"}
        )
        self.learned[(resolved.endpoint.name, resolved.model)] = current.model_copy(update=change)


def host_label(url: str) -> str:
    return urlsplit(url).hostname or url
