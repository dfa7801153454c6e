-- `haven audit verify` at a million incidents (issue 25): verification compares each recorded
-- incident's digest (who may see it, its category and priority, its actions) with the incident
-- as it stands. SQLite keeps a row's columns together, and an incident's row fills most of a
-- page with its sealed texts, so reading the three short columns of a million incidents read
-- a million pages scattered through the whole file (22 s per million). This index holds just
-- those columns, in id order: verification reads it instead, a few thousand pages. (Built once
-- from the whole table when the migration runs.)
CREATE INDEX incidents_digest ON incidents (id, category, priority, visibility);
