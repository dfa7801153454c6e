-- `haven audit verify` at a million incidents (issue 25): verification compares each recorded
-- incident's digest (who may see it, its category and priority, its actions) with the incident
-- as it stands. SQLite keeps a row's columns together, and an incident's row fills most of a
-- page with its sealed texts, so reading the three short columns of a million incidents read
-- a million pages scattered through the whole file (22 s per million). This index holds just
-- those columns, in id order: verification reads it instead (`tests/plans.rs` checks the plan).
-- Built once from the whole table when the migration runs. PostgreSQL's migration 0042 adds the
-- same columns and the incident's time, for the chronology's index as well; SQLite looks an
-- incident up by its rowid there however the index is made.
CREATE INDEX incidents_light ON incidents (id, visibility, category, priority);
