"""TinyChat's launcher: `make run` (`python -m tinychat_launcher`) starts the whole stack."""
