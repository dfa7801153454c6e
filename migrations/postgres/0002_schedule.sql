-- Which digest slot each recipient has been dealt with for, so a restart neither repeats nor
-- skips a digest. `digest` names the configured digest (its `to` and cron); `recipient` is
-- `staff:ID`. `sent` is FALSE for a slot that was passed over: the first slot seen for a new
-- recipient (the starting point), or an empty digest that was not configured to be sent.
CREATE TABLE digest_runs (
    digest     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    slot_us    BIGINT NOT NULL,
    sent       BOOLEAN NOT NULL,
    at_us      BIGINT NOT NULL,
    PRIMARY KEY (digest, recipient, slot_us)
);
