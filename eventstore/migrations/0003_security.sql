-- Sessions end at an absolute lifetime, however often they are refreshed (SESSION_MAX_AGE).
-- Sessions from before this migration get 30 days from their start.
ALTER TABLE sessions ADD COLUMN expires_at timestamptz;
UPDATE sessions SET expires_at = created_at + interval '30 days' WHERE expires_at IS NULL;
ALTER TABLE sessions ALTER COLUMN expires_at SET NOT NULL;

-- Image uploads, for the per-user quota and for the collector of unreferenced image bytes
-- (an upload younger than the grace period keeps its blob). Rows older than both are deleted.
CREATE TABLE image_uploads (
    id          bigserial   PRIMARY KEY,
    user_id     uuid        NOT NULL,
    sha256      text        NOT NULL,
    bytes       bigint      NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX image_uploads_user_idx ON image_uploads (user_id, uploaded_at);
CREATE INDEX image_uploads_sha256_idx ON image_uploads (sha256, uploaded_at);

-- Which attached images hold a blob (the collector asks per digest).
CREATE INDEX events_attached_image_sha256_idx ON events ((data->>'sha256'))
    WHERE event_type = 'ReviewImageAttached';
