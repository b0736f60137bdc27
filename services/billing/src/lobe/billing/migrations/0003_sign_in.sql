-- Sign-in: a role per user (what the gateway's session claims), and the identities users sign in
-- with. A user is found by (provider, subject) first: an address can change at the provider, the
-- subject never does. The first sign-in of an identity links it to the user with that e-mail
-- (case-insensitive: an operator may create `alice` with her address beforehand, as an admin),
-- or creates a user on the default plan.
ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
CREATE INDEX users_email_lower_idx ON users (lower(email));

CREATE TABLE user_identities (
    provider        text NOT NULL,
    subject         text NOT NULL,
    user_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);
