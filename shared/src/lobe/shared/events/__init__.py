"""The event catalog: one module per domain, subjects beside their models."""
