"""Provider adapters: one module per wire format, all yielding the same stream events."""
