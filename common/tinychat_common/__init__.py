"""Shared building blocks for the TinyChat services.

Modules:
    events     typed stream events (Content, Status, ImageResult, RlmStep, Error, Done)
    sse        the one encoder of events to SSE bytes, and an incremental SSE decoder
    streaming  EventStream: an SSE response with keepalive, and serve_events()
    errors     TinyChatError and its family, the JSON/event forms, error middleware
    settings   ServiceSettings base and load_settings() (one-line start-up errors)
    probes     /healthz, /readyz, /metrics
    metrics    per-app Prometheus registry and the request middleware
    security   security headers (CSP) middleware
    logs       JSON logging
    service    base_app() and run_service(): what every service's app and __main__ use
"""

__version__ = "0.1.0"
