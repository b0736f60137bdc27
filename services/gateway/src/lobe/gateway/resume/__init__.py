"""Resumable streams (docs/streaming.md): a client that asks for one (`X-Lobe-Resumable: true`)
gets an `id:` on each SSE event and can take the rest of the same answer, after a lost
connection, from any gateway replica: the events are kept in Redis for RESUME_WINDOW_S, and the
answer runs on for RESUME_GRACE_S after its client left. Without the header nothing changes."""
