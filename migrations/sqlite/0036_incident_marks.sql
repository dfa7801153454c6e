-- The multi-agency chronology (issue 21): the DSL marks an incident as a significant event
-- with a one-line summary and its impact on the child, for the partnership's column set. A mark
-- is a new row, like a correction: the incident itself is never changed, and the newest row for
-- an incident counts (a later row may unmark it). Summary and impact are sealed (under the
-- pupil's own key when the incident is about one pupil); the rows go with their incident.
CREATE TABLE incident_marks (
    id           INTEGER PRIMARY KEY,
    incident_id  BIGINT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    significant  BOOLEAN NOT NULL,
    summary      TEXT,
    impact       TEXT,
    marked_by    BIGINT NOT NULL REFERENCES staff(id),
    marked_us    BIGINT NOT NULL
);
CREATE INDEX incident_marks_incident ON incident_marks (incident_id, id);
