"""Shared building blocks for the TinyChat services.

Modules:
    events     typed stream events (Content, Status, ImageResult, RlmStep, Error, Done)
    sse        the one encoder of events to SSE bytes, and an incremental SSE decoder
    streaming  EventStream: an SSE response with keepalive, and serve_events()
    errors     TinyChatError and its family, the JSON/event forms, error middleware
    bodies     the one JSON request-body reader (the same 400/413 everywhere)
    limiter    concurrency slots (slot(), limiter_context()); Busy is a 429 with Retry-After
    redact     secrets out of provider text; a URL without its credentials
    chatlog    the CHAT_LOG writer and log_record(), the one record shape
    settings   ServiceSettings base and load_settings() (one-line start-up errors)
    probes     /healthz, /readyz, /metrics
    metrics    per-app Prometheus registry and the request middleware
    security   security headers (CSP) middleware
    logs       JSON logging
    service    base_app() and run_service(): what every service's app and __main__ use
"""

__version__ = "0.1.0"
