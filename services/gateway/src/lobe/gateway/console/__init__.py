"""The web console under /console: server-rendered pages on the gateway's own origin, one small
script and one stylesheet of its own, a strict Content-Security-Policy. Every change a page makes
is a call to the public API (/v1/keys, /v1/admin/*, /auth/logout, /v1/chat/completions) sent by
static/console.js as JSON, so the session cookie's CSRF rule (lobe.gateway.auth.browser) guards
it as it guards any other caller; the pages themselves only read."""
