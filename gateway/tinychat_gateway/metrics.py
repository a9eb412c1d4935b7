"""The gateway's own metrics, on the app's registry next to the common request metrics."""

from __future__ import annotations

from prometheus_client import Counter
from tinychat_common.metrics import ServiceMetrics


class GatewayMetrics:
    def __init__(self, base: ServiceMetrics) -> None:
        self.frames_relayed: Counter = base.counter(
            "tinychat_gateway_relayed_frames",
            "SSE frames (events and keepalives) relayed from the services to clients.",
            ["service"],
        )
        self.bytes_relayed: Counter = base.counter(
            "tinychat_gateway_relayed_bytes", "SSE bytes relayed from the services to clients.", ["service"]
        )
        self.downstream_errors: Counter = base.counter(
            "tinychat_gateway_downstream_errors",
            "Failures talking to a service, by kind: unreachable, timeout, interrupted, bad_answer.",
            ["service", "kind"],
        )
        self.rate_limited: Counter = base.counter(
            "tinychat_gateway_rate_limited", "Requests refused by the per-client rate limit.", ["kind"]
        )
        self.passcode_failures: Counter = base.counter(
            "tinychat_gateway_passcode_failures",
            "RLM passcode checks refused: missing, wrong, or from a locked-out client.",
        )
