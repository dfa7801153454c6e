-- The DSL console's sign-in state. Secrets are never stored in the clear: the TOTP secret is
-- sealed with the console key, session ids and recovery codes are kept only as SHA-256 hashes.

-- Each member of staff's second factor: pending until the first code is accepted.
CREATE TABLE console_totp (
    staff_id      BIGINT PRIMARY KEY REFERENCES staff(id),
    sealed_secret TEXT NOT NULL,
    enrolled_us   BIGINT,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked_us     BIGINT
);

-- Ten single-use recovery codes per member of staff, shown once at enrolment.
CREATE TABLE console_recovery_codes (
    code_hash TEXT PRIMARY KEY,
    staff_id  BIGINT NOT NULL REFERENCES staff(id),
    used_us   BIGINT
);

-- Sign-in links already used (by their nonce): a link works once.
CREATE TABLE console_links_used (
    nonce   TEXT PRIMARY KEY,
    used_us BIGINT NOT NULL
);

-- Server-side sessions. `stage` is 'totp' after the emailed link, 'ok' after the second factor.
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    staff_id     BIGINT NOT NULL REFERENCES staff(id),
    stage        TEXT NOT NULL CHECK (stage IN ('totp', 'ok')),
    csrf         TEXT NOT NULL,
    created_us   BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL
);
CREATE INDEX console_sessions_staff ON console_sessions(staff_id);
