-- Why an incident is in its category when that is not what staff asked for: a category they
-- named that is not configured ("Category: Victim"), and which one was used instead. Shown on
-- the chronology; NULL when staff named a known category or none.
ALTER TABLE incidents ADD COLUMN category_note TEXT;
