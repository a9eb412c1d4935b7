"""The gateway's errors, under tinychat_common's TinyChatError.

TinyChatError
├── Unauthorized
│   └── WrongPasscode            401 invalid_passcode
├── RateLimited
│   ├── TooManyRequests          429 rate_limited        (+ Retry-After)
│   └── TooManyPasscodeFailures  429 too_many_attempts   (+ Retry-After)
├── UpstreamError
│   └── BadDownstreamAnswer      502 bad_gateway
└── ServiceUnavailable
    ├── ServiceUnreachable       503 service_unavailable
    ├── ServiceInterrupted       502 service_interrupted  (a stream that stopped early)
    └── ServiceStalled           504 service_timeout
"""

from __future__ import annotations

import math

from tinychat_common.errors import RateLimited, ServiceUnavailable, Unauthorized, UpstreamError

# How the error messages name each downstream service.
SERVICE_NAMES = {"chat": "chat service", "image": "image service", "rlm": "RLM service"}


def service_name(service: str) -> str:
    return SERVICE_NAMES.get(service, f"{service} service")


class WrongPasscode(Unauthorized):
    code = "invalid_passcode"
    default_message = "RLM needs a passcode, and the one given is missing or wrong."


class _RetryLater(RateLimited):
    """A 429 that tells the client when to come back."""

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))  # sent as Retry-After


class TooManyRequests(_RetryLater):
    def __init__(self, kind: str, limit: int, *, retry_after: float) -> None:
        super().__init__(
            f"Too many {kind} requests: the limit is {limit} a minute. "
            f"Try again in {max(1, math.ceil(retry_after))} s.",
            retry_after=retry_after,
        )


class TooManyPasscodeFailures(_RetryLater):
    code = "too_many_attempts"

    def __init__(self, *, retry_after: float) -> None:
        super().__init__(
            f"Too many wrong passcodes from this address. Try again in {max(1, math.ceil(retry_after))} s.",
            retry_after=retry_after,
        )


class BadDownstreamAnswer(UpstreamError):
    code = "bad_gateway"

    def __init__(self, service: str, status: int) -> None:
        super().__init__(f"The {service_name(service)} gave an unexpected answer (HTTP {status}).")


class ServiceUnreachable(ServiceUnavailable):
    def __init__(self, service: str) -> None:
        super().__init__(f"The {service_name(service)} is not available right now; try again in a moment.")


class ServiceInterrupted(ServiceUnavailable):
    status = 502
    code = "service_interrupted"

    def __init__(self, service: str) -> None:
        super().__init__(f"The {service_name(service)} stopped in the middle of the answer.")


class ServiceStalled(ServiceUnavailable):
    status = 504
    code = "service_timeout"

    def __init__(self, service: str) -> None:
        super().__init__(f"The {service_name(service)} stopped responding; the answer was cut short.")
