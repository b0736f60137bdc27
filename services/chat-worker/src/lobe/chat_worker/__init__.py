"""Chat worker: takes chat requests off NATS, calls a provider, streams the answer back."""
