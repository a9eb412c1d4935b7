"""The RLM passcode: a constant-time check and a per-client limit on wrong guesses."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from .errors import TooManyPasscodeFailures, WrongPasscode
from .ratelimit import SlidingWindow

GLOBAL = "*"


def _digest(text: str) -> bytes:
    # Comparing digests keeps even the passcode's length out of the timing.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class PasscodeGuard:
    def __init__(
        self, passcode: SecretStr, max_failures: int, window_seconds: float, global_max_failures: int = 50
    ) -> None:
        secret = passcode.get_secret_value()
        self.required = bool(secret)
        self._expected = _digest(secret)
        self.failures = SlidingWindow(max_failures, window_seconds)
        # All clients together: an attacker with many addresses gets no more guesses.
        self.global_failures = SlidingWindow(global_max_failures, window_seconds)

    def check(self, client: str, given: str | None) -> None:
        """Pass quietly, or raise WrongPasscode / TooManyPasscodeFailures (a locked-out
        client is refused even with the right passcode until its window passes)."""
        if not self.required:
            return
        wait = max(self.failures.retry_after(client), self.global_failures.retry_after(GLOBAL))
        if wait > 0:
            raise TooManyPasscodeFailures(retry_after=wait)
        if given is None or not hmac.compare_digest(_digest(given), self._expected):
            self.failures.record(client)
            self.global_failures.record(GLOBAL)
            raise WrongPasscode()
