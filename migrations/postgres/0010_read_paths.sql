-- Issue 25: read paths proportional to what they return, and backfills without alerts.

-- An incident filed from a historical message (older than intake.backfill_age when filed, or
-- filed by `haven ingest --backfill`): recorded with its history, but no alert was queued and
-- no outcome deadline opened. Digests count these instead of listing them.
ALTER TABLE incidents ADD COLUMN backfilled BOOLEAN NOT NULL DEFAULT FALSE;

-- The directory's generation: bumped by every import, so a daemon holding the opened
-- (decrypted) directory in memory knows when to read it again, with one cheap query.
CREATE TABLE directory_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 1);

-- An incident's actions (its outcome on a chronology, whether its outcome is open, who owns it).
CREATE INDEX actions_incident ON actions (incident_id);
-- Who was sent an incident's alerts and reminders (who may record its outcome).
CREATE INDEX outbox_incident ON outbox (incident_id);
-- Status counts by state, from the index rather than the wide outbox rows.
CREATE INDEX outbox_state ON outbox (state);
-- Messages listed by state (`haven messages --state …`) in id order.
CREATE INDEX messages_state_id ON messages (state, id);
-- Dead-lettered emails since a digest, and other audit look-ups by action and time.
CREATE INDEX audit_log_action_at ON audit_log (action, at_us);
-- A digest lists the incidents filed live since the last one and counts the historical ones:
-- each from its own index, so a large backfill is counted, never read row by row.
CREATE INDEX incidents_live_recorded ON incidents (recorded_us) WHERE NOT backfilled;
CREATE INDEX incidents_backfilled_recorded ON incidents (recorded_us) WHERE backfilled;
