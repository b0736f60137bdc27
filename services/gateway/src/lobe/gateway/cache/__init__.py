"""The response cache: a per-process LRU bounded in bytes, then a shared Redis with a TTL."""
