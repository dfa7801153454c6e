-- Subject access requests (issue 22). A request names its subject (a pupil, or an adult by
-- email address: a parent, a carer, a member of staff), when it was received and when the
-- answer is due: one calendar month from receipt, extendable by up to two more months with a
-- reason. The requester's details and the subject's address are sealed. While a request is
-- open it keeps holds (the holds table, reason 'sar') on what it is about; closing releases
-- them. Collected items are snapshots of what the school holds, sealed, each decided with an
-- exemption code; an export keeps a sealed copy of exactly the bytes sent.

CREATE TABLE sar_requests (
    id             BIGSERIAL PRIMARY KEY,
    -- 'pupil': pupil_id names them; 'adult': subject_email (sealed) names them.
    subject_kind   TEXT NOT NULL CHECK (subject_kind IN ('pupil', 'adult')),
    -- No foreign key: a pupil disposed of after the request closed leaves the request.
    pupil_id       BIGINT,
    subject_email  TEXT,                 -- sealed
    requester      TEXT,                 -- sealed
    received_on    TEXT NOT NULL,        -- YYYY-MM-DD, day 1 of the month
    due_on         TEXT NOT NULL,        -- YYYY-MM-DD, one calendar month on
    extended_to    TEXT,                 -- YYYY-MM-DD, at most two months more
    extend_reason  TEXT,                 -- sealed
    extended_by    BIGINT REFERENCES staff(id),
    extended_us    BIGINT,
    state          TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    opened_by      BIGINT NOT NULL REFERENCES staff(id),
    opened_us      BIGINT NOT NULL,
    closed_by      BIGINT REFERENCES staff(id),
    closed_us      BIGINT,
    CHECK ((subject_kind = 'pupil') = (pupil_id IS NOT NULL))
);
CREATE INDEX sar_requests_open ON sar_requests (state);

-- The holds an open request placed, released when it closes.
CREATE TABLE sar_holds (
    sar_id   BIGINT NOT NULL REFERENCES sar_requests(id),
    -- No foreign key: a disposal after the request closed deletes the released hold.
    hold_id  BIGINT NOT NULL,
    PRIMARY KEY (sar_id, hold_id)
);

-- What `haven sar collect` gathered: one row per item, numbered from 1 within its request.
CREATE TABLE sar_items (
    id           BIGSERIAL PRIMARY KEY,
    sar_id       BIGINT NOT NULL REFERENCES sar_requests(id),
    item         BIGINT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('incident', 'message', 'alert', 'audit')),
    -- The incident, unfiled message or audit subject it was taken from ("incident:12", "message:7", "pupil:3").
    source       TEXT NOT NULL,
    item_us      BIGINT NOT NULL,
    flags        TEXT NOT NULL,          -- comma-separated, no content
    content      TEXT NOT NULL,          -- sealed JSON snapshot of the item's text
    sha256       TEXT NOT NULL,          -- of the snapshot, as collected
    decision     TEXT CHECK (decision IN ('disclose', 'withhold', 'redact')),
    exemption    TEXT,
    redactions   TEXT,                   -- sealed JSON list of the texts withheld
    reason       TEXT,                   -- sealed
    -- Who was consulted (social care, the police) or why nobody was: sealed; required for an
    -- item of child abuse data and for a serious-harm decision.
    consulted    TEXT,
    decided_by   BIGINT REFERENCES staff(id),
    decided_us   BIGINT,
    UNIQUE (sar_id, item),
    UNIQUE (sar_id, kind, source)
);

-- The disclosure log: each export's exact bytes, sealed, with their SHA-256, who and when.
CREATE TABLE sar_disclosures (
    id           BIGSERIAL PRIMARY KEY,
    sar_id       BIGINT NOT NULL REFERENCES sar_requests(id),
    sha256       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    copy         BYTEA NOT NULL,          -- sealed
    decisions    TEXT NOT NULL,          -- JSON: item, decision, exemption, redaction count
    sent_by      BIGINT NOT NULL REFERENCES staff(id),
    sent_us      BIGINT NOT NULL
);
CREATE INDEX sar_disclosures_sar ON sar_disclosures (sar_id);

CREATE FUNCTION sar_disclosures_are_permanent() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the disclosure log is permanent: rows are never deleted';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sar_disclosures_are_permanent BEFORE DELETE ON sar_disclosures
    FOR EACH ROW EXECUTE FUNCTION sar_disclosures_are_permanent();
