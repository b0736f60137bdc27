"""HTTP plumbing for provider adapters: one request, four timeouts, a closed connection on exit."""
