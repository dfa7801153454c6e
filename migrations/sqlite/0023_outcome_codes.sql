-- Outcome codes (issue 21): the decision an outcome records (NFA, MONITOR, EARLY-HELP,
-- REFERRED-CSC, LADO, POLICE, NO-REFERRAL), read from the start of its text so reports can
-- count decisions with GROUP BY. The code alone is in clear, as an incident's category is; the
-- outcome's text (a CSC reference, the reason not to refer) stays sealed beside it.
ALTER TABLE actions ADD COLUMN outcome_code TEXT;
