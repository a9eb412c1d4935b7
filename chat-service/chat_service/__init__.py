"""TinyChat."""
