"""What can go wrong in an RLM job, each with a status, a code and a readable message.

    TinyChatError (tinychat_common.errors)
    ├── BadRequest
    │   ├── NoQuestion               400 no_question        (the last message is not the user's)
    │   └── SubcallRefused           400 subcall_refused    (reaches the cell as an error, not the user)
    ├── UpstreamError
    │   └── ChatServiceFailed        502 (the chat-service's own code, e.g. upstream_rate_limited)
    ├── UpstreamTimeout
    │   ├── RlmTimeout               504 rlm_timeout        (RLM_TIMEOUT for the whole job)
    │   └── CellTimeout              504 cell_timeout       (RLM_CELL_TIMEOUT for one cell)
    └── ServiceUnavailable
        ├── RlmDisabled              503 rlm_disabled
        ├── SandboxUnavailable       503 sandbox_unavailable (no sandbox can be started now)
        ├── ChatServiceUnreachable   503 chat_service_unavailable
        ├── SandboxFailed            503 sandbox_failed     (could not start, or died)
        └── TokenLost                503 token_lost         (Redis went away mid-job)

Busy (429) comes from the limiter itself. chat_client.py and engine.py are the places that
turn aiohttp and sandbox failures into these.
"""

from __future__ import annotations

from tinychat_common.errors import BadRequest, ServiceUnavailable, UpstreamError, UpstreamTimeout


class NoQuestion(BadRequest):
    code = "no_question"
    default_message = "An RLM request must end with a user message: that message is the question."


class SubcallRefused(BadRequest):
    """An llm_query the job will not send (too long, too many). The sandbox hands the message
    to the cell as a RuntimeError, so the model can split its prompts and go on."""

    code = "subcall_refused"


class ChatServiceFailed(UpstreamError):
    default_message = "The model call failed."


class RlmTimeout(UpstreamTimeout):
    code = "rlm_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The RLM job ran longer than its limit of {seconds:g} s and was stopped "
            "(RLM_TIMEOUT). Try a narrower question or raise the limit."
        )


class CellTimeout(UpstreamTimeout):
    code = "cell_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"A code cell ran longer than its limit of {seconds:g} s; the sandbox was stopped "
            "and the job ended (RLM_CELL_TIMEOUT)."
        )


class RlmDisabled(ServiceUnavailable):
    code = "rlm_disabled"
    default_message = "RLM is turned off on this server (RLM_ENABLED=false)."


class SandboxUnavailable(ServiceUnavailable):
    code = "sandbox_unavailable"
    default_message = "RLM is unavailable: no code sandbox can be started right now."


class ChatServiceUnreachable(ServiceUnavailable):
    code = "chat_service_unavailable"
    default_message = "The chat service is not available, so the RLM job cannot ask the model."


class SandboxFailed(ServiceUnavailable):
    code = "sandbox_failed"
    default_message = "The code sandbox failed; the RLM job was stopped."


class TokenLost(ServiceUnavailable):
    code = "token_lost"
    default_message = (
        "The RLM job lost its concurrency token (the Redis store became unreachable) and was stopped."
    )
