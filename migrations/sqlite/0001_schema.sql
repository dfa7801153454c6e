-- Haven's schema (SQLite). Times are microseconds since the Unix epoch, UTC (BIGINT, columns
-- ending in _us), identical on both backends so the same queries and comparisons hold.

CREATE TABLE pupils (
    id              INTEGER PRIMARY KEY,
    upn             TEXT NOT NULL UNIQUE,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    preferred_name  TEXT,
    date_of_birth   TEXT,                 -- YYYY-MM-DD
    year_group      INTEGER,
    tutor_group     TEXT,
    house           TEXT,
    sen             BOOLEAN NOT NULL DEFAULT FALSE,
    left_on         TEXT,                 -- YYYY-MM-DD; NULL while on roll
    legal_hold      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_us      BIGINT NOT NULL
);

CREATE TABLE staff (
    id           INTEGER PRIMARY KEY,
    first_name   TEXT NOT NULL,
    last_name    TEXT NOT NULL,
    house        TEXT,
    tutor_group  TEXT,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    updated_us   BIGINT NOT NULL
);

CREATE TABLE staff_emails (
    email     TEXT PRIMARY KEY,           -- lower-case
    staff_id  BIGINT NOT NULL REFERENCES staff(id),
    position  INTEGER NOT NULL
);

CREATE TABLE staff_roles (
    staff_id  BIGINT NOT NULL REFERENCES staff(id),
    role      TEXT NOT NULL,
    PRIMARY KEY (staff_id, role)
);

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,   -- lower-case
    name          TEXT,
    relationship  TEXT
);

CREATE TABLE contact_pupils (
    contact_id  BIGINT NOT NULL REFERENCES contacts(id),
    pupil_id    BIGINT NOT NULL REFERENCES pupils(id),
    PRIMARY KEY (contact_id, pupil_id)
);

-- Raw messages and attachments, content-addressed.
CREATE TABLE blobs (
    sha256  TEXT PRIMARY KEY,
    size    BIGINT NOT NULL,
    data    BLOB NOT NULL
);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    sha256            TEXT UNIQUE REFERENCES blobs(sha256),  -- NULL only when too large to fetch
    message_id        TEXT,
    source            TEXT NOT NULL,      -- imap | maildir | file
    origin            TEXT NOT NULL,      -- mailbox name or file path, for the technician
    imap_uidvalidity  BIGINT,
    imap_uid          BIGINT,
    received_us       BIGINT NOT NULL,
    size              BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('filed', 'awaiting_triage', 'quarantined', 'duplicate', 'ignored')),
    reason            TEXT NOT NULL,
    duplicate_of      BIGINT REFERENCES messages(id)
);
CREATE UNIQUE INDEX messages_imap_uid ON messages (origin, imap_uidvalidity, imap_uid) WHERE imap_uid IS NOT NULL;
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_state ON messages (state, received_us);

CREATE TABLE incidents (
    id                 INTEGER PRIMARY KEY,
    message_id         BIGINT REFERENCES messages(id),
    occurred_us        BIGINT NOT NULL,
    recorded_us        BIGINT NOT NULL,
    recorded_by        BIGINT REFERENCES staff(id),
    record_kind        TEXT NOT NULL,     -- email | conversation | observation | phone_call | reply
    category           TEXT NOT NULL,
    priority           TEXT NOT NULL,
    visibility         TEXT NOT NULL,
    note               TEXT,
    original_from      TEXT,
    original_name      TEXT,
    original_subject   TEXT,
    body_text          TEXT NOT NULL,
    body_html          TEXT,
    corrects           BIGINT REFERENCES incidents(id)
);
CREATE INDEX incidents_recorded ON incidents (recorded_us);

CREATE TABLE incident_pupils (
    incident_id  BIGINT NOT NULL REFERENCES incidents(id),
    pupil_id     BIGINT NOT NULL REFERENCES pupils(id),
    role         TEXT NOT NULL,
    how          TEXT NOT NULL,
    PRIMARY KEY (incident_id, pupil_id)
);
CREATE INDEX incident_pupils_pupil ON incident_pupils (pupil_id);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    incident_id   BIGINT NOT NULL REFERENCES incidents(id),
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL REFERENCES blobs(sha256),
    inline        BOOLEAN NOT NULL,
    tnef          BOOLEAN NOT NULL
);
CREATE INDEX attachments_incident ON attachments (incident_id);

CREATE TABLE actions (
    id           INTEGER PRIMARY KEY,
    incident_id  BIGINT NOT NULL REFERENCES incidents(id),
    owner        BIGINT REFERENCES staff(id),
    created_us   BIGINT NOT NULL,
    due_us       BIGINT NOT NULL,
    outcome      TEXT,
    outcome_by   BIGINT REFERENCES staff(id),
    outcome_us   BIGINT
);
CREATE INDEX actions_open_due ON actions (due_us) WHERE outcome IS NULL;

-- One row per escalation rung; fired_us set exactly once, in the transaction that queues its alerts.
CREATE TABLE action_rungs (
    action_id   BIGINT NOT NULL REFERENCES actions(id),
    rung        INTEGER NOT NULL,
    due_us      BIGINT NOT NULL,
    recipients  TEXT NOT NULL,            -- JSON list of staff ids
    fired_us    BIGINT,
    PRIMARY KEY (action_id, rung)
);
CREATE INDEX action_rungs_due ON action_rungs (due_us) WHERE fired_us IS NULL;

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    incident_id      BIGINT REFERENCES incidents(id),
    purpose          TEXT NOT NULL,       -- alert | reminder | digest | triage | notice
    recipient        TEXT NOT NULL,
    email_message_id TEXT NOT NULL UNIQUE,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_us       BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_us  BIGINT NOT NULL,
    last_error       TEXT,
    sent_us          BIGINT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_us) WHERE state = 'pending';

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at_us      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
