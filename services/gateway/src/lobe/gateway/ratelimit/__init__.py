"""Rate limits in Redis: per user (requests and tokens per window, by tier) and per client IP."""
