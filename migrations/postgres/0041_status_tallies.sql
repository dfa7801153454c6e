-- `haven status`, the digest, the metrics and systemd's status line at a million messages
-- (issue 25): how many messages are in each state, how many incidents there are and how many
-- alerts are pending, sent or dead are kept as they change, not counted from every row each
-- time they are asked (at a million rows an exact count takes PostgreSQL 160-330 ms on two
-- cores, however it is indexed). Triggers write each statement's change as a row of its own,
-- so concurrent writers never wait on one shared row (nor deadlock on two); `Store::fold_tallies`
-- folds the rows into one per count from time to time, and a status adds up the rest.
CREATE TABLE tallies (
    id     BIGSERIAL PRIMARY KEY,
    tally  TEXT NOT NULL,     -- messages, incidents or outbox: the table counted
    state  TEXT NOT NULL,     -- the row's state ('' for incidents)
    n      BIGINT NOT NULL    -- rows added (removed, if negative) in that state
);

-- One trigger function for tables with a `state`: each statement's inserted, deleted or
-- changed rows, by state (transition tables, so one row per statement, not per row).
CREATE FUNCTION tally_by_state() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (tally, state, n) SELECT TG_TABLE_NAME, state, COUNT(*) FROM added GROUP BY state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO tallies (tally, state, n) SELECT TG_TABLE_NAME, state, -COUNT(*) FROM removed GROUP BY state;
    ELSE
        INSERT INTO tallies (tally, state, n)
            SELECT TG_TABLE_NAME, state, SUM(n) FROM (
                SELECT state, -1 AS n FROM removed UNION ALL SELECT state, 1 AS n FROM added
            ) changed GROUP BY state HAVING SUM(n) <> 0;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION tally_rows() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (tally, state, n) SELECT TG_TABLE_NAME, '', COUNT(*) FROM added HAVING COUNT(*) > 0;
    ELSE
        INSERT INTO tallies (tally, state, n) SELECT TG_TABLE_NAME, '', -COUNT(*) FROM removed HAVING COUNT(*) > 0;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- PostgreSQL allows a transition table only on a trigger of one event, hence three per table.
CREATE TRIGGER tally_messages_added AFTER INSERT ON messages REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_messages_removed AFTER DELETE ON messages REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_messages_changed AFTER UPDATE ON messages REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_outbox_added AFTER INSERT ON outbox REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_outbox_removed AFTER DELETE ON outbox REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_outbox_changed AFTER UPDATE ON outbox REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tally_by_state();
CREATE TRIGGER tally_incidents_added AFTER INSERT ON incidents REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER tally_incidents_removed AFTER DELETE ON incidents REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();

-- What the tables hold now, counted once (the triggers above already hold the tables' locks
-- for this transaction, so nothing is counted twice or missed).
INSERT INTO tallies (tally, state, n) SELECT 'messages', state, COUNT(*) FROM messages GROUP BY state;
INSERT INTO tallies (tally, state, n) SELECT 'outbox', state, COUNT(*) FROM outbox GROUP BY state;
INSERT INTO tallies (tally, state, n) SELECT 'incidents', '', COUNT(*) FROM incidents HAVING COUNT(*) > 0;
