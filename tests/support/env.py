"""The environment variables TinyChat's services read, by prefix: tests and the benchmark
drop every one of them from the developer's shell so that nothing there changes a result."""

from __future__ import annotations

SERVICE_ENV_PREFIXES = (
    "OPENAI_",
    "DEFAULT_",
    "AVAILABLE_MODELS",
    "MAX_",
    "CHAT_",
    "IMAGE_",
    "SWARMUI",
    "RLM_",
    "REDIS_",
    "ENABLE_DEBUG",
    "ALLOWED_",
    "PORT",
    "HOST",
    "SHUTDOWN_",
    "KEEPALIVE_",
    "TRUSTED_PROXIES",
    "RATE_LIMIT",
    "WEB_DIR",
    "UPSTREAM_",
    "DOWNSTREAM_",
    "CONFIG_CACHE_",
    "MODELS_CACHE_",
    "INTERNAL_TOKEN",
    "AUTH_",
    "PUBLIC_URL",
    "REQUEST_",
    "MAX_CONNECTIONS_PER_CLIENT",
)
