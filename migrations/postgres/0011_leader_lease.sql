-- The leader lease: among several `haven run` on one database, only the holder of the lease
-- named 'leader' reads the intake mailbox and runs the scheduler's passes. `term` grows by one
-- at every takeover, so a write made under an older term can be refused (fencing). Times are
-- the database server's clock, in microseconds since the Unix epoch, so daemons on machines
-- whose clocks disagree still agree on when a lease runs out. The row exists from the start:
-- taking the lease is an UPDATE that only one daemon can win; `expires_us = 0` is a lease
-- nobody holds (a daemon that stops cleanly hands it back that way, keeping its name as the
-- last holder).
CREATE TABLE leader_lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL DEFAULT '',
    term        BIGINT NOT NULL DEFAULT 0,
    acquired_us BIGINT NOT NULL DEFAULT 0,
    renewed_us  BIGINT NOT NULL DEFAULT 0,
    expires_us  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO leader_lease (name) VALUES ('leader');
