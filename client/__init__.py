"""The Python client API, the CLI and the embedded-server launcher."""
