-- The audit chain becomes an HMAC-SHA256 chain under a key kept outside the database.
-- seq:     the entry's position in the chain (1, 2, …), covered by the MAC, so the head
--          anchored outside the database ("audit.head") can name how many entries there are.
-- os_user: the operating-system account that ran the command, beside the claimed actor.
-- chain:   'sha256' for entries written before this migration (the old unkeyed chain, which
--          verification still accepts, but only before the first keyed entry) and
--          'hmac-sha256' for every entry written since.
-- record, record_digest: for an entry that changed what an incident says or who may see it
--          ('incident:ID'), the SHA-256 of the incident's category, priority, visibility and
--          actions (owner, due, outcome by and when) as that change left them; covered by the
--          MAC, so `haven audit verify` can check the incidents against the chain.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN os_user TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_log ADD COLUMN record TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN record_digest TEXT NOT NULL DEFAULT '';
UPDATE audit_log SET seq = numbered.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM audit_log) AS numbered
WHERE audit_log.id = numbered.id;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq);
