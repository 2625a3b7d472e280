-- Identity on the command side: what must never leave PostgreSQL (password hashes, refresh
-- tokens) and what must be enforced by the database (case-insensitive unique usernames, one
-- superuser). Who a user is (name, email, role, region) is in the user events; this table
-- mirrors what login and authorisation need, written in the same transaction as the events.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('publisher', 'analyst', 'admin')),
    is_superuser  boolean     NOT NULL DEFAULT false,
    deleted_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Usernames stay reserved after deletion: an old username never names someone new.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_single_superuser_key ON users ((true)) WHERE is_superuser;

-- A login session; its refresh tokens rotate, its access tokens carry its id (`sid`).
CREATE TABLE sessions (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_reason text
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored only as SHA-256 hashes. A used token stays, marked, so that
-- presenting it again is recognised as reuse and revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
