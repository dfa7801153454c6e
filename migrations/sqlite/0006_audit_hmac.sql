-- The audit chain becomes an HMAC-SHA256 chain under a key kept outside the database.
-- seq:     the entry's position in the chain (1, 2, …), covered by the MAC, so the head
--          anchored outside the database ("audit.head") can name how many entries there are.
-- os_user: the operating-system account that ran the command, beside the claimed actor.
-- chain:   'sha256' for entries written before this migration (the old unkeyed chain, which
--          verification still accepts, but only before the first keyed entry) and
--          'hmac-sha256' for every entry written since.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN os_user TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
UPDATE audit_log SET seq = numbered.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM audit_log) AS numbered
WHERE audit_log.id = numbered.id;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq);
