-- Finding a pupil by name without opening every name (issue 25). Pupils' names are sealed, so
-- the database cannot compare them; beside each pupil go blind indexes of the words of their
-- first, preferred and last names (HMAC-SHA256 of the normalised word under the key derived from
-- the storage key, as for the UPN: see daemon/src/blind.rs). A search hashes the words typed
-- and asks this index; only the pupils it returns are opened. Haven fills it at its next start
-- for pupils imported before this migration (SQL cannot: it has no key), and every directory
-- import rewrites a pupil's words with the pupil.
CREATE TABLE pupil_name_tokens (
    token     TEXT NOT NULL,
    pupil_id  BIGINT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    PRIMARY KEY (token, pupil_id)
);
CREATE INDEX pupil_name_tokens_pupil ON pupil_name_tokens (pupil_id);

-- A pupil's chronology reads their links by pupil, then each incident by its key: with the
-- incident and the role in the index, the links are read from the index alone (one range, not
-- one table row per incident). It replaces the index on pupil_id alone, which it begins with.
CREATE INDEX incident_pupils_chronology ON incident_pupils (pupil_id, incident_id, role);
DROP INDEX incident_pupils_pupil;
