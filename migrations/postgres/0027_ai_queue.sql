-- AI suggestions (issue 23): the incidents a model is to read, worked after filing by the triage
-- worker, and the suggestion it made, sealed on the incident. A job is queued in the same
-- transaction that files its incident; `next_attempt_us` is both the backoff and the claim's
-- lease (a claimed job's moves to the end of the lease, as the outbox's does), and `claim` names
-- the worker holding it, so only that worker can complete it.
CREATE TABLE ai_queue (
    incident_id     BIGINT PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    queued_us       BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us BIGINT NOT NULL,
    claim           TEXT,
    -- suggested | no_suggestion (the answer did not parse) | gave_up (every attempt failed)
    outcome         TEXT,
    done_us         BIGINT
);
CREATE INDEX ai_queue_pending ON ai_queue (next_attempt_us) WHERE state = 'pending';
-- JSON {model, risk, category, reasons, summary}, sealed (incident.ai_suggestion).
ALTER TABLE incidents ADD COLUMN ai_suggestion TEXT;
