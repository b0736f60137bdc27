"""Lobe developer tools: the `lobe` CLI, embedded NATS/PostgreSQL/Redis servers, the pytest harness."""
