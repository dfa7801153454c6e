-- A triage question is about a message that has no incident yet: the message it asks about.
ALTER TABLE outbox ADD COLUMN message_id BIGINT REFERENCES messages(id);
