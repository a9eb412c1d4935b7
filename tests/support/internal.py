"""The internal token for tests that run the services with it on, as compose,
Kubernetes and `make run` do."""

from __future__ import annotations

TEST_INTERNAL_TOKEN = "test-internal-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TEST_INTERNAL_TOKEN}"}
