-- What each part of the running daemon is doing, written when its state changes (never per
-- message), so `haven status` can say "IMAP login failing since 09:12: …" and not only when a
-- message was last filed. One row per part: intake, outbox, scheduler. Errors here are server
-- and network errors; they never quote a message.
CREATE TABLE health (
    component  TEXT PRIMARY KEY CHECK (component IN ('intake', 'outbox', 'scheduler')),
    -- ok: working; failing: retrying after an error; stopped: the daemon shut it down.
    state      TEXT NOT NULL CHECK (state IN ('ok', 'failing', 'stopped')),
    -- What is working or failing, for people: "IMAP connected", "IMAP login", "SMTP".
    what       TEXT NOT NULL,
    -- When this state began: connected since, or failing since.
    since_us   BIGINT NOT NULL,
    -- The latest error while failing, kept after recovery until the next one.
    last_error TEXT,
    error_us   BIGINT,
    -- Messages waiting in the intake mailbox when last looked (intake only).
    backlog    BIGINT,
    -- Which daemon wrote the row ("host pid 1234").
    daemon     TEXT NOT NULL,
    updated_us BIGINT NOT NULL
);
