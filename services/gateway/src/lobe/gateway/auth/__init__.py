"""Who is calling: API keys, session JWTs, and the sign-in that issues those sessions.

- `credentials`: the one entry every route uses (`Authenticator`): a bearer API key or session
  JWT, or the session cookie; a refusal is a 401 in OpenAI's format with no bus traffic for
  anything malformed or badly signed.
- `api_keys`: bootstrap keys and billing's keys (looked up over NATS, cached per replica).
- `signing_keys`, `session_tokens`: the session JWTs (several keys verify, one signs: rotation
  without signing anyone out) and the JWKS the gateway publishes.
- `sessions`, `revocations`: the active and revoked sessions in Redis, and each replica's
  in-memory copy of the revoked ones that `auth.login.ended` updates at once.
- `oidc`, `github`, `sign_in_flow`, `sign_in`: the code flow (state, nonce, PKCE) with any OpenID
  provider or GitHub, and the routes that run it.
- `admin`: admin-only routes (sessions; billing's admin API for admin sessions).
- `guard`: where a limiter sees sign-ins and refused credentials.
"""
