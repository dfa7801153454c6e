-- AI suggestions (issue 23): what the DSL team said of a suggestion, by replying "AI: right" or
-- "AI: wrong" to an alert about its incident. One verdict per incident and member of staff (a
-- later reply replaces an earlier one), for `haven ai report`'s measured precision.
CREATE TABLE ai_feedback (
    id          BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    staff_id    BIGINT NOT NULL REFERENCES staff(id),
    verdict     TEXT NOT NULL CHECK (verdict IN ('right', 'wrong')),
    at_us       BIGINT NOT NULL,
    UNIQUE (incident_id, staff_id)
);
