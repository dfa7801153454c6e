-- Transfer of the child-protection file when a pupil leaves (issue 22). A pupil who leaves
-- (found missing from a directory import, or `haven leaver`) and has any incident gets one
-- transfer case: the file must reach the destination school within a number of school days
-- (`[transfer] deadline`), separately from the main pupil file, with confirmation of receipt.
-- The destination and who signed the receipt are sealed; nothing else here is personal.
-- pupil_id has no foreign key: a disposal deletes the pupil's row and their cases with it.

CREATE TABLE transfer_cases (
    id               INTEGER PRIMARY KEY,
    pupil_id         BIGINT NOT NULL,
    left_on          TEXT NOT NULL,                -- YYYY-MM-DD
    destination      TEXT,                         -- sealed "SCHOOL NAME <dsl@school>"; NULL: unknown
    destination_on   TEXT,                         -- YYYY-MM-DD the destination became known
    clock_start      TEXT,                         -- YYYY-MM-DD; NULL while waiting for the destination
    due_on           TEXT,                         -- YYYY-MM-DD, the last school day to send
    state            TEXT NOT NULL CHECK (state IN ('open', 'prepared', 'sent', 'closed')),
    opened_by        BIGINT REFERENCES staff(id),  -- NULL: opened by a directory import
    opened_us        BIGINT NOT NULL,
    prepared_by      BIGINT REFERENCES staff(id),
    prepared_us      BIGINT,
    bundle_sha256    TEXT,                         -- SHA-256 of the signed manifest
    bundle_items     BIGINT,
    sent_by          BIGINT REFERENCES staff(id),
    sent_us          BIGINT,
    receipt_due_on   TEXT,                         -- YYYY-MM-DD, the last school day for a receipt
    received_by      TEXT,                         -- sealed "NAME, ROLE" from the receipt
    received_us      BIGINT,
    closed_us        BIGINT
);
CREATE UNIQUE INDEX transfer_cases_pupil ON transfer_cases (pupil_id, left_on);

-- The reminder ladder of a case: each rung fires once (fired_us set in the transaction that
-- queues its emails), and only while the case is at the stage it belongs to ('send': not yet
-- sent; 'receipt': sent, no receipt yet).
CREATE TABLE transfer_reminders (
    case_id   BIGINT NOT NULL REFERENCES transfer_cases(id),
    rung      INTEGER NOT NULL,
    stage     TEXT NOT NULL CHECK (stage IN ('send', 'receipt')),
    kind      TEXT NOT NULL,                       -- opened | reminder | overdue | chase
    due_us    BIGINT NOT NULL,
    fired_us  BIGINT,
    PRIMARY KEY (case_id, rung)
);
CREATE INDEX transfer_reminders_due ON transfer_reminders (due_us) WHERE fired_us IS NULL;
