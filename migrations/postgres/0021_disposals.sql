-- Disposal (issue 22): a pupil's records in one retention series destroyed by two people, the
-- DSL team asking and the head or the DPO approving, after a cooling-off period. Each row is
-- both the request's state and, once carried out, the permanent disposal log: it holds no
-- content (who the pupil was is cleared when it is carried out), only the series, the counts
-- of what was destroyed, the dates, who asked, approved and ran it, and the date by which the
-- school's older backups are gone. Nothing deletes from it (the trigger below).

CREATE TABLE disposals (
    id                 BIGSERIAL PRIMARY KEY,
    -- No foreign key: the pupil's row is deleted by the disposal, and this is cleared then.
    pupil_id           BIGINT,
    series             TEXT NOT NULL,
    -- Why it may be disposed of: a destroy decision on review, or the series is past due.
    basis              TEXT NOT NULL CHECK (basis IN ('review', 'due')),
    state              TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'cancelled', 'done')),
    reason             TEXT,                -- sealed; cleared (NULL) when carried out
    requested_by       BIGINT NOT NULL REFERENCES staff(id),
    requested_us       BIGINT NOT NULL,
    approved_by        BIGINT REFERENCES staff(id),
    approved_us        BIGINT,
    not_before_us      BIGINT,              -- approved_us + the cooling-off period
    cancelled_by       BIGINT REFERENCES staff(id),
    cancelled_us       BIGINT,
    cancel_reason      TEXT,                -- sealed; cleared when the pupil is disposed of
    run_by             BIGINT REFERENCES staff(id),
    run_us             BIGINT,
    backups_expire_on  TEXT,                -- YYYY-MM-DD
    destroyed          TEXT                 -- JSON counts, no content
);
CREATE INDEX disposals_pupil ON disposals (pupil_id) WHERE pupil_id IS NOT NULL;

CREATE FUNCTION disposals_are_permanent() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the disposal log is permanent: rows are never deleted';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER disposals_are_permanent BEFORE DELETE ON disposals
    FOR EACH ROW EXECUTE FUNCTION disposals_are_permanent();
