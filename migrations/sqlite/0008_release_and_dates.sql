-- Issue 16, defects 4 and 5.
-- A message's content hash (SHA-256 of its body, line endings normalised): with the
-- Message-ID it decides whether a later message is a duplicate. NULL for messages recorded
-- before this migration (judged by Message-ID alone) and for those never read.
ALTER TABLE messages ADD COLUMN content_sha256 TEXT;
-- Who released a quarantined message (`haven messages release`), and when.
ALTER TABLE messages ADD COLUMN released_by BIGINT REFERENCES staff(id);
ALTER TABLE messages ADD COLUMN released_us BIGINT;
-- Why an incident's occurred-at is its filing time: the original's date was unreadable or
-- more than a day in the future. NULL when the original's date was used.
ALTER TABLE incidents ADD COLUMN date_note TEXT;
