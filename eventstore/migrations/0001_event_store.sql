-- The event store: an append-only log of every domain event, with a global position.
--
-- Positions come from a sequence, assigned by a trigger that first forces the transaction to
-- take its transaction id (xid). That order, xid before position, is what lets the outbox
-- relay compute a gap-safe high-water mark without serialising writers: see
-- command-api/src/relay/high_water.rs for the argument.

CREATE SEQUENCE events_position_seq AS bigint CACHE 1;

CREATE TABLE events (
    position          bigint      PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL CHECK (aggregate_version > 0),
    occurred_at       timestamptz NOT NULL,
    actor             jsonb,
    correlation_id    uuid        NOT NULL,
    causation_id      uuid,
    data              jsonb       NOT NULL,
    -- the writing transaction; kept for diagnosis of the relay's high-water mark
    txid              xid8        NOT NULL,
    CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

-- Read paths of the event log: by type, by time (position order within each).
CREATE INDEX events_type_position_idx ON events (event_type, position);
CREATE INDEX events_occurred_at_idx ON events (occurred_at, position);

CREATE FUNCTION events_assign_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- xid first: a transaction holding any position already has an xid, so once every xid
    -- below a snapshot's xmax has finished, every position handed out before that snapshot
    -- is committed or rolled back for good.
    NEW.txid := pg_current_xact_id();
    NEW.position := nextval('events_position_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

-- Events are never updated or deleted.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- Wakes the relay of any command-api instance; delivered at commit, once per transaction.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('events_appended', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- One row per aggregate: its current version. The optimistic-concurrency check is a
-- conditional update of this row, whose lock also orders concurrent writers of one aggregate.
CREATE TABLE streams (
    aggregate_type text   NOT NULL,
    aggregate_id   uuid   NOT NULL,
    version        bigint NOT NULL CHECK (version > 0),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Idempotent commands: the first answer to a key is stored in the same transaction as the
-- events it produced and replayed for a repeat of the same request.
CREATE TABLE idempotency_keys (
    scope       text        NOT NULL,  -- whose key: a user id, or 'anonymous'
    key         text        NOT NULL,
    fingerprint text        NOT NULL,  -- method, path and a hash of the body
    status      smallint,
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- How far the outbox relay has published (mirrors the last message of the EVENTS stream;
-- kept for lag reporting).
CREATE TABLE relay_progress (
    name         text        PRIMARY KEY,
    position     bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
