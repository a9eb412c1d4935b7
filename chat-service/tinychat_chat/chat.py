"""One chat turn: validate and prepare it, relay the answer, then count and log it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from tinychat_common.chatlog import ChatLog, log_record, redact_images
from tinychat_common.errors import TinyChatError
from tinychat_common.events import Content, Done, Event, Reasoning
from tinychat_common.metrics import ServiceMetrics
from tinychat_common.models import Message

from .config import ChatSettings
from .conversation import InternalChatRequest, Limits, prepare_messages, upstream_payload
from .endpoints import Endpoints, Resolved
from .errors import NoTitle, TitlesOff, UpstreamParameterRefused
from .titles import clean_title, title_payload
from .upstream import Completion, UpstreamClient
from .usage import with_estimates

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class ChatMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.ttft: Histogram = metrics.histogram(
            "tinychat_chat_ttft_seconds",
            "Time from request to the first piece of the answer, by model.",
            ["model"],
            buckets=TTFT_BUCKETS,
        )
        self.upstream_errors: Counter = metrics.counter(
            "tinychat_chat_upstream_errors", "Failed model API calls, by kind.", ["kind"]
        )
        self.events_relayed: Counter = metrics.counter(
            "tinychat_chat_events_relayed", "Content and reasoning events relayed to clients."
        )
        self.completions: Counter = metrics.counter(
            "tinychat_chat_completions", "Finished chat requests, by model and outcome.", ["model", "outcome"]
        )


@dataclass
class PreparedChat:
    model: str  # the id the request named (with its endpoint's prefix, if any)
    temperature: float
    messages: list[Message]  # as kept after trimming, for the log
    payload: dict[str, Any]
    started: float
    resolved: Resolved
    user: str | None = None  # the signed-in identity the gateway passed on, for the log

    @property
    def upstream(self) -> UpstreamClient:
        return self.resolved.endpoint.upstream


@dataclass
class Outcome:
    finish_reason: str = "cancelled"  # until we learn otherwise: the client went away
    usage: dict[str, Any] | None = None
    error_code: str | None = None


class ChatService:
    def __init__(
        self,
        settings: ChatSettings,
        endpoints: Endpoints,
        chat_log: ChatLog,
        metrics: ChatMetrics,
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.catalog = endpoints
        self.chat_log = chat_log
        self.metrics = metrics
        self.limits = Limits(
            settings.max_message_length, settings.max_conversation_history, settings.max_image_bytes
        )

    async def prepare(self, request: InternalChatRequest) -> PreparedChat:
        """Everything that can be refused is refused here, before any stream starts."""
        started = time.perf_counter()
        resolved = await self.endpoints.resolve(request.model)
        # `is None`, not `or`: a temperature of 0 is a choice, not a missing value.
        temperature = (
            self.settings.default_temperature if request.temperature is None else request.temperature
        )
        kept, converted = await prepare_messages(request.messages, self.limits)
        quirks = self.endpoints.quirks(resolved)
        payload = upstream_payload(request, resolved.model, temperature, converted, quirks)
        return PreparedChat(resolved.public_id, temperature, kept, payload, started, resolved)

    async def stream(self, chat: PreparedChat) -> AsyncIterator[Event]:
        """The answer as events, ending with Done; upstream failures are raised."""
        outcome = Outcome()
        parts: list[str] = []
        thoughts: list[str] = []
        try:
            async for item in chat.upstream.stream_chat(chat.payload):
                if isinstance(item, str):
                    if not parts and not thoughts:
                        self.metrics.ttft.labels(chat.model).observe(time.perf_counter() - chat.started)
                    parts.append(item)
                    yield Content(item)
                    continue
                if isinstance(item, Reasoning):
                    if not parts and not thoughts:
                        self.metrics.ttft.labels(chat.model).observe(time.perf_counter() - chat.started)
                    thoughts.append(item.text)
                    yield item
                    continue
                usage = with_estimates(item.usage, chat.payload["messages"], "".join(thoughts + parts))
                outcome.finish_reason, outcome.usage = item.finish_reason, usage
                yield Done(item.finish_reason, usage)
                return
        except TinyChatError as exc:
            outcome.finish_reason, outcome.error_code = "error", exc.code
            self.metrics.upstream_errors.labels(exc.code).inc()
            self._adapt(chat, exc)
            raise
        except Exception:
            outcome.finish_reason, outcome.error_code = "error", "internal_error"
            raise
        finally:
            # Counted once per answer, not per event: a metric update takes a lock.
            self.metrics.events_relayed.inc(len(parts) + len(thoughts))
            self._finish(chat, outcome, "".join(parts), "".join(thoughts))

    async def complete(self, chat: PreparedChat) -> Completion:
        outcome = Outcome()
        completion: Completion | None = None
        try:
            completion = await chat.upstream.complete(chat.payload)
            completion.usage = with_estimates(
                completion.usage, chat.payload["messages"], completion.reasoning + completion.content
            )
            outcome.finish_reason, outcome.usage = completion.finish_reason, completion.usage
            if completion.content:
                self.metrics.ttft.labels(chat.model).observe(time.perf_counter() - chat.started)
            return completion
        except TinyChatError as exc:
            outcome.finish_reason, outcome.error_code = "error", exc.code
            self.metrics.upstream_errors.labels(exc.code).inc()
            self._adapt(chat, exc)
            raise
        finally:
            self._finish(
                chat,
                outcome,
                completion.content if completion else "",
                completion.reasoning if completion else "",
            )

    async def title(self, request: InternalChatRequest) -> str:
        """A short title for the conversation, from one non-streaming call."""
        resolved = await self.endpoints.resolve(request.model)
        if not resolved.endpoint.titles:
            raise TitlesOff()
        kept, _ = await prepare_messages(request.messages, self.limits)
        payload = title_payload(resolved.model, kept, self.endpoints.quirks(resolved))
        try:
            title = clean_title(await resolved.endpoint.upstream.complete_once(payload))
        except UpstreamParameterRefused as exc:
            self.endpoints.learn(resolved, exc.parameter)
            raise
        except TinyChatError as exc:
            self.metrics.upstream_errors.labels(exc.code).inc()
            raise
        if not title:
            raise NoTitle()
        return title

    def _adapt(self, chat: PreparedChat, exc: TinyChatError) -> None:
        if isinstance(exc, UpstreamParameterRefused):
            self.endpoints.learn(chat.resolved, exc.parameter)

    def _finish(self, chat: PreparedChat, outcome: Outcome, response: str, reasoning: str = "") -> None:
        self.metrics.completions.labels(chat.model, outcome.finish_reason).inc()
        if not self.chat_log.enabled:
            return
        entry = log_record(
            "chat",
            model=chat.model,
            outcome=outcome.error_code or ("cancelled" if outcome.finish_reason == "cancelled" else "ok"),
            seconds=time.perf_counter() - chat.started,
            user=chat.user,
            temperature=chat.temperature,
            messages=redact_images(m.model_dump(exclude_none=True) for m in chat.messages),
            response=response,
            finish_reason=outcome.finish_reason,
            usage=outcome.usage,
        )
        if reasoning:
            entry["reasoning"] = reasoning
        self.chat_log.record(entry)
