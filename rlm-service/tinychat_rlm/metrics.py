"""rlm-service's own metrics, on the app's registry next to the shared request metrics."""

from __future__ import annotations

from tinychat_common.metrics import ServiceMetrics

from .engine import SandboxWatch


class RlmMetrics(SandboxWatch):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.jobs = metrics.counter(
            "tinychat_rlm_jobs",
            "RLM jobs finished, by outcome (answered, forced, error, timeout, cell_timeout, "
            "token_lost, cancelled, busy).",
            ["outcome"],
        )
        self.job_seconds = metrics.histogram(
            "tinychat_rlm_job_duration_seconds",
            "Time from the start of an RLM job to its end.",
            buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300),
        )
        self.subcalls = metrics.counter("tinychat_rlm_subcalls", "llm_query prompts sent to the model.")
        self.sandbox_starts = metrics.counter("tinychat_rlm_sandbox_starts", "Sandboxes started.")
        self.sandbox_kills = metrics.counter(
            "tinychat_rlm_sandbox_kills",
            "Sandboxes killed, by why the job ended (finished, error, cancelled).",
            ["reason"],
        )
        self.tokens_in_use = metrics.gauge(
            "tinychat_rlm_tokens_in_use", "Concurrency tokens this replica holds right now."
        )

    def started(self) -> None:
        self.sandbox_starts.inc()

    def killed(self, reason: str) -> None:
        self.sandbox_kills.labels(reason).inc()
