-- SQLite's migration 0042 gives `haven audit verify` an index of the columns an incident's
-- digest covers, because SQLite reads a whole row's page to reach them. PostgreSQL keeps long
-- values apart from the row (TOAST), so an incident's row stays under about 2 KB and its
-- verification already reads them in order (8 s per million); it needs no such index, and an
-- index-only scan would need the visibility map besides. Nothing to change here; the number is kept so
-- both engines' migrations stay in step.
SELECT 1;
