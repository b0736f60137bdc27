"""Gateway: the OpenAI-compatible HTTP API in front of the NATS bus."""
