-- Passkeys (WebAuthn), the stronger second factor of the console, always in addition to an
-- enrolled TOTP. The passkey (public key, counter) is stored sealed with the console key; the
-- credential id is kept in the clear, unique, so one authenticator cannot be registered twice.
CREATE TABLE console_passkeys (
    id             BIGSERIAL PRIMARY KEY,
    staff_id       BIGINT NOT NULL REFERENCES staff(id),
    credential_id  TEXT NOT NULL UNIQUE,
    sealed_passkey TEXT NOT NULL,
    name           TEXT NOT NULL,
    added_us       BIGINT NOT NULL,
    last_used_us   BIGINT
);
CREATE INDEX console_passkeys_staff ON console_passkeys(staff_id);

-- A WebAuthn ceremony under way (adding a passkey, or signing in with one), bound to its
-- session: its state, sealed, what it is for ('register' or 'authenticate') and when it
-- started. Taken once: a challenge cannot be answered twice.
ALTER TABLE console_sessions ADD COLUMN ceremony TEXT;
ALTER TABLE console_sessions ADD COLUMN ceremony_kind TEXT;
ALTER TABLE console_sessions ADD COLUMN ceremony_us BIGINT;
