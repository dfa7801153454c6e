-- AI suggestions and the rules (issue 23): once a suggestion is stored, only the rules with
-- `when.ai_risk` are evaluated again, adding alerts, priority or an outcome deadline. A rule may
-- say what to do when no suggestion comes within `ai_timeout`; `waited_us` is the longest such
-- wait already acted on for the incident (0: none), so each is acted on once, whichever daemon
-- looks.
ALTER TABLE ai_queue ADD COLUMN waited_us BIGINT NOT NULL DEFAULT 0;
