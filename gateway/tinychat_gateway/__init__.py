"""TinyChat's gateway: the web UI, the public API, and the relay to the services."""
