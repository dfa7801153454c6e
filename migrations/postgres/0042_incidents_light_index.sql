-- The short columns of an incident that two reads of many incidents at once need, held in an
-- index so that PostgreSQL reads them from it (an index-only scan, where the visibility map is
-- set: by autovacuum, or by Haven itself where autovacuum is off) and not from the incidents'
-- rows (issue 25): a chronology's index (each entry's time and who may see it; at a million
-- incidents a pupil's 500 entries were 500 pages read from the table) and `haven audit verify`
-- (who may see each incident, its category and priority). See SQLite's migration 0042.
CREATE INDEX incidents_light ON incidents (id) INCLUDE (occurred_us, visibility, category, priority);
