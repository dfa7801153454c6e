-- Reports (issue 21): governors' and inspectors' reports count in the database, and the DSL
-- records referrals to other agencies and the multi-agency plans a pupil is on.

-- Reports count incidents by when they happened, over a term: this index serves every count
-- of a period from the index alone (by category, delays to recording, by recorder), follow-ups
-- and corrections left out.
CREATE INDEX incidents_occurred_category ON incidents (occurred_us, category, recorded_us, recorded_by)
    WHERE follows IS NULL AND corrects IS NULL;
-- Which pupils an incident is about, and in what role, without reading the link rows.
CREATE INDEX incident_pupils_about ON incident_pupils (incident_id, role, pupil_id);

-- A referral of an incident to another agency (`haven referral add`): the agency in clear so
-- reports can count it with GROUP BY; the agency's reference sealed, as an outcome's text is.
CREATE TABLE referrals (
    id           INTEGER PRIMARY KEY,
    incident_id  BIGINT NOT NULL REFERENCES incidents(id),
    agency       TEXT NOT NULL CHECK (agency IN ('CSC', 'LADO', 'POLICE', 'EARLY-HELP', 'OTHER')),
    reference    TEXT,                  -- sealed; NULL when none was given
    referred_on  TEXT NOT NULL,         -- YYYY-MM-DD
    created_by   BIGINT NOT NULL REFERENCES staff(id),
    created_us   BIGINT NOT NULL
);
CREATE INDEX referrals_referred_on ON referrals (referred_on, agency);
CREATE INDEX referrals_incident ON referrals (incident_id);

-- A multi-agency plan a pupil is on (`haven plan add|end`), entered by the DSL: its kind in
-- clear for counting, dated, with the next review the scheduler reminds the DSL team of.
CREATE TABLE pupil_plans (
    id               INTEGER PRIMARY KEY,
    pupil_id         BIGINT NOT NULL REFERENCES pupils(id),
    kind             TEXT NOT NULL CHECK (kind IN ('early-help', 'child-in-need', 'child-protection', 'looked-after', 'other')),
    starts_on        TEXT NOT NULL,     -- YYYY-MM-DD
    ends_on          TEXT,              -- YYYY-MM-DD; NULL while open
    starts_us        BIGINT NOT NULL,   -- the start of starts_on in the school's zone, for counting
    ends_us          BIGINT,            -- the start of ends_on, likewise
    end_reason       TEXT,              -- sealed
    review_every_days BIGINT,           -- NULL: no reviews are reminded
    next_review_on   TEXT,              -- YYYY-MM-DD; NULL when ended or not reviewed
    created_by       BIGINT NOT NULL REFERENCES staff(id),
    created_us       BIGINT NOT NULL,
    ended_by         BIGINT REFERENCES staff(id),
    ended_us         BIGINT
);
CREATE INDEX pupil_plans_pupil ON pupil_plans (pupil_id);
CREATE INDEX pupil_plans_review ON pupil_plans (next_review_on) WHERE ends_on IS NULL;
