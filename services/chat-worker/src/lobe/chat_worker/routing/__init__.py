"""Routing: which deployment answers a request, shared by every worker (docs/routing.md)."""
