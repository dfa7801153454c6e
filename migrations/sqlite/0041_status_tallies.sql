-- `haven status`, the digest, the metrics and systemd's status line at a million messages
-- (issue 25): how many messages are in each state, how many incidents there are and how many
-- alerts are pending, sent or dead are kept as they change, not counted from every row each
-- time they are asked. SQLite has one writer at a time, so each count is one row, kept by
-- triggers on every row written (PostgreSQL, with concurrent writers, adds a row per statement
-- instead: see its migration). A status adds them up the same way on both.
CREATE TABLE tallies (
    id     INTEGER PRIMARY KEY,
    tally  TEXT NOT NULL,     -- messages, incidents or outbox: the table counted
    state  TEXT NOT NULL,     -- the row's state ('' for incidents)
    n      INTEGER NOT NULL,
    UNIQUE (tally, state)
);
-- A row for every state the tables' CHECKs allow, so the triggers only ever add to one.
INSERT INTO tallies (tally, state, n) VALUES
    ('messages', 'filed', 0), ('messages', 'awaiting_triage', 0), ('messages', 'quarantined', 0),
    ('messages', 'duplicate', 0), ('messages', 'ignored', 0),
    ('outbox', 'pending', 0), ('outbox', 'sent', 0), ('outbox', 'dead', 0),
    ('incidents', '', 0);
UPDATE tallies SET n = (SELECT COUNT(*) FROM messages WHERE messages.state = tallies.state) WHERE tally = 'messages';
UPDATE tallies SET n = (SELECT COUNT(*) FROM outbox WHERE outbox.state = tallies.state) WHERE tally = 'outbox';
UPDATE tallies SET n = (SELECT COUNT(*) FROM incidents) WHERE tally = 'incidents';

CREATE TRIGGER tally_messages_added AFTER INSERT ON messages
BEGIN UPDATE tallies SET n = n + 1 WHERE tally = 'messages' AND state = NEW.state; END;
CREATE TRIGGER tally_messages_removed AFTER DELETE ON messages
BEGIN UPDATE tallies SET n = n - 1 WHERE tally = 'messages' AND state = OLD.state; END;
CREATE TRIGGER tally_messages_changed AFTER UPDATE OF state ON messages WHEN NEW.state <> OLD.state
BEGIN
    UPDATE tallies SET n = n - 1 WHERE tally = 'messages' AND state = OLD.state;
    UPDATE tallies SET n = n + 1 WHERE tally = 'messages' AND state = NEW.state;
END;
CREATE TRIGGER tally_outbox_added AFTER INSERT ON outbox
BEGIN UPDATE tallies SET n = n + 1 WHERE tally = 'outbox' AND state = NEW.state; END;
CREATE TRIGGER tally_outbox_removed AFTER DELETE ON outbox
BEGIN UPDATE tallies SET n = n - 1 WHERE tally = 'outbox' AND state = OLD.state; END;
CREATE TRIGGER tally_outbox_changed AFTER UPDATE OF state ON outbox WHEN NEW.state <> OLD.state
BEGIN
    UPDATE tallies SET n = n - 1 WHERE tally = 'outbox' AND state = OLD.state;
    UPDATE tallies SET n = n + 1 WHERE tally = 'outbox' AND state = NEW.state;
END;
CREATE TRIGGER tally_incidents_added AFTER INSERT ON incidents
BEGIN UPDATE tallies SET n = n + 1 WHERE tally = 'incidents'; END;
CREATE TRIGGER tally_incidents_removed AFTER DELETE ON incidents
BEGIN UPDATE tallies SET n = n - 1 WHERE tally = 'incidents'; END;
