-- Which emails go first. Lane 0: someone is waiting for it now (a console sign-in link, which
-- works for ten minutes) or it is about an urgent incident (its alerts and reminders). Lane 1:
-- everything else. The outbox claims lane 0 before lane 1, oldest first within a lane, so a
-- backlog of routine alerts never holds up a sign-in link or an urgent alert.
ALTER TABLE outbox ADD COLUMN lane SMALLINT NOT NULL DEFAULT 1;
UPDATE outbox SET lane = 0
 WHERE state = 'pending'
   AND purpose IN ('alert', 'reminder')
   AND incident_id IN (SELECT id FROM incidents WHERE priority = 'urgent');
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (lane, next_attempt_us, id) WHERE state = 'pending';
