-- The relay is woken only when it waits. A NOTIFY takes a lock that PostgreSQL holds across
-- the commit of every notifying transaction in the cluster, so one per appending transaction
-- serialised all writers' commits. Now the leading relay says when it is about to wait
-- (`idle`), and only appends made while it says so notify; while it works, it finds new events
-- itself. No wake-up is lost: a writer that read `idle = false` already holds its xid, so the
-- relay's next look at the settled horizon, taken after it set `idle`, waits for that writer
-- (command-api/src/relay/mod.rs). Live tails of the event log are woken by the relay's own
-- `events_published`, one per published batch, and poll every second besides.
CREATE TABLE relay_wake (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    idle      boolean NOT NULL
);
INSERT INTO relay_wake (singleton, idle) VALUES (true, true);

CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM relay_wake WHERE idle) THEN
        PERFORM pg_notify('events_appended', '');
    END IF;
    RETURN NULL;
END
$$;
