-- A TOTP code works once (RFC 6238 section 5.2): the time step of the last code accepted for
-- each member of staff, so that a code seen over a shoulder or replayed from a captured form
-- cannot be used again inside its 30-second window (or the window's one step of skew).
ALTER TABLE console_totp ADD COLUMN last_step BIGINT;
