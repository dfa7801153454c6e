-- The governors' summary at a million incidents (issue 21): the counts a report adds up are
-- kept per school day, so a term is a sum over its hundred-odd days, not a join over every
-- incident. A day's counts are rebuilt from the records themselves (the same GROUP BY as
-- before, over that day) whenever anything it counts has changed: triggers note what changed
-- in `report_stale`, whatever path made the change (filing, outcomes, relinking, disposal, a
-- category corrected, a pupil's year group, characteristics or plans), and the next report
-- recounts the days concerned first. Only counts are kept, no text; values in clear as the
-- columns they are counted from are.

-- One count of one day: `figure` is what is counted (category, year, house, sen, group,
-- outcome, recorder, pupil, open_due, occurred_to_recorded, recorded_to_outcome), `value` the group
-- (NULL: no value), `n` incidents (for `pupil`, incidents about that pupil that day).
CREATE TABLE report_day_counts (
    day     TEXT NOT NULL,      -- YYYY-MM-DD in the school's time zone
    figure  TEXT NOT NULL,
    value   TEXT,
    n       BIGINT NOT NULL
);
CREATE INDEX report_day_counts_figure ON report_day_counts (figure, day, value, n);
CREATE INDEX report_day_counts_day ON report_day_counts (day);

-- What changed since the days were last counted: an incident's time (its day is recounted), or
-- a pupil (every day with an incident about them is).
CREATE TABLE report_stale (
    id           BIGSERIAL PRIMARY KEY,
    occurred_us  BIGINT,
    pupil_id     BIGINT
);

-- The days a recount is working on, inside its transaction (empty otherwise).
CREATE TABLE report_recount (
    day      TEXT PRIMARY KEY,
    from_us  BIGINT NOT NULL,
    to_us    BIGINT NOT NULL
);

-- The time zone the days were counted in; NULL until the first report counts them all (as it
-- does for a database migrated with its incidents already in it), or when it changes.
CREATE TABLE report_counts_state (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    tz  TEXT
);
INSERT INTO report_counts_state (id, tz) VALUES (1, NULL);

-- Each trigger notes what a change touched; see the SQLite migration for the same in full.
CREATE FUNCTION report_incident_stale() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_stale (occurred_us) VALUES (OLD.occurred_us);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.occurred_us <> OLD.occurred_us) THEN
        INSERT INTO report_stale (occurred_us) VALUES (NEW.occurred_us);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER report_incident_filed AFTER INSERT OR DELETE ON incidents
    FOR EACH ROW EXECUTE FUNCTION report_incident_stale();
CREATE TRIGGER report_incident_changed AFTER UPDATE OF occurred_us, recorded_us, recorded_by, category, follows, corrects ON incidents
    FOR EACH ROW EXECUTE FUNCTION report_incident_stale();

-- A link or an action: the day of its incident (both incidents when it moved).
CREATE FUNCTION report_incident_row_stale() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_stale (occurred_us) SELECT occurred_us FROM incidents WHERE id = OLD.incident_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO report_stale (occurred_us) SELECT occurred_us FROM incidents WHERE id = NEW.incident_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER report_link_changed AFTER INSERT OR UPDATE OR DELETE ON incident_pupils
    FOR EACH ROW EXECUTE FUNCTION report_incident_row_stale();
CREATE TRIGGER report_action_added AFTER INSERT OR DELETE ON actions
    FOR EACH ROW EXECUTE FUNCTION report_incident_row_stale();
CREATE TRIGGER report_action_changed AFTER UPDATE OF incident_id, due_us, outcome, outcome_us, outcome_code ON actions
    FOR EACH ROW EXECUTE FUNCTION report_incident_row_stale();

-- A pupil's groups, characteristics or plans: every day with an incident about them.
CREATE FUNCTION report_pupil_stale() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_stale (pupil_id) VALUES (OLD.pupil_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO report_stale (pupil_id) VALUES (NEW.pupil_id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER report_characteristic_changed AFTER INSERT OR UPDATE OR DELETE ON pupil_characteristics
    FOR EACH ROW EXECUTE FUNCTION report_pupil_stale();
CREATE TRIGGER report_plan_added AFTER INSERT OR DELETE ON pupil_plans
    FOR EACH ROW EXECUTE FUNCTION report_pupil_stale();
CREATE TRIGGER report_plan_changed AFTER UPDATE OF pupil_id, kind, starts_us, ends_us ON pupil_plans
    FOR EACH ROW EXECUTE FUNCTION report_pupil_stale();

CREATE FUNCTION report_pupil_groups_stale() RETURNS trigger AS $$
BEGIN
    INSERT INTO report_stale (pupil_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER report_pupil_changed AFTER UPDATE OF year_group, house, sen ON pupils
    FOR EACH ROW WHEN (OLD.year_group IS DISTINCT FROM NEW.year_group OR OLD.house IS DISTINCT FROM NEW.house OR OLD.sen IS DISTINCT FROM NEW.sen)
    EXECUTE FUNCTION report_pupil_groups_stale();
