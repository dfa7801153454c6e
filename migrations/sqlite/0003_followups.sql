-- A reply to an alert is filed as a follow-up entry pointing at the incident it answers.
ALTER TABLE incidents ADD COLUMN follows BIGINT REFERENCES incidents(id);
