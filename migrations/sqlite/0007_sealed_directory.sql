-- Data at rest: the pupil roll and parents' contacts are sealed like incident text (the columns
-- keep their names and now hold `enc1:` sealed text), and equality look-ups go through a keyed
-- hash of the normalised value (a blind index: HMAC-SHA256 under a key derived from the storage
-- key). The old UNIQUE constraints on upn/email still hold (a sealed value is never repeated);
-- uniqueness of the real value is kept by these indexes. Rows written before this migration are
-- sealed by Haven itself at its next start (SQL cannot: it has no key).
ALTER TABLE pupils ADD COLUMN upn_index TEXT;
CREATE UNIQUE INDEX pupils_upn_index ON pupils (upn_index);
ALTER TABLE contacts ADD COLUMN email_index TEXT;
CREATE UNIQUE INDEX contacts_email_index ON contacts (email_index);
