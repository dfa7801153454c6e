-- Retention and holds (issue 22). A hold (litigation, police, an inquiry, a subject access
-- request, a complaint) stands on a pupil or on one incident until someone releases it; while
-- it stands nothing of theirs may be decided for destruction. Notes and reasons are sealed
-- like incident text. Holds replace the never-used pupils.legal_hold flag.

CREATE TABLE holds (
    id            BIGSERIAL PRIMARY KEY,
    pupil_id      BIGINT REFERENCES pupils(id),
    incident_id   BIGINT REFERENCES incidents(id),
    reason        TEXT NOT NULL CHECK (reason IN ('litigation', 'police', 'inquiry', 'sar', 'complaint', 'other')),
    note          TEXT NOT NULL,
    set_by        BIGINT NOT NULL REFERENCES staff(id),
    set_us        BIGINT NOT NULL,
    released_by   BIGINT REFERENCES staff(id),
    released_us   BIGINT,
    release_note  TEXT,
    CHECK ((pupil_id IS NULL) <> (incident_id IS NULL))
);
CREATE INDEX holds_pupil ON holds (pupil_id) WHERE released_us IS NULL;
CREATE INDEX holds_incident ON holds (incident_id) WHERE released_us IS NULL;

-- A review of a pupil's records in one retention series: keep them until a date, or destroy
-- them (which only a two-person disposal may then carry out). The newest decision counts.
CREATE TABLE retention_reviews (
    id          BIGSERIAL PRIMARY KEY,
    pupil_id    BIGINT NOT NULL REFERENCES pupils(id),
    series      TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('retain', 'destroy')),
    until_date  TEXT,
    reason      TEXT NOT NULL,
    decided_by  BIGINT NOT NULL REFERENCES staff(id),
    decided_us  BIGINT NOT NULL
);
CREATE INDEX retention_reviews_pupil ON retention_reviews (pupil_id, series, decided_us);

ALTER TABLE pupils DROP COLUMN legal_hold;
