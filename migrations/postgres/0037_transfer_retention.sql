-- What the school keeps after a transfer (issue 22, `[transfer] retain_after` and `retain_for`),
-- and the advance notice to the destination (`haven transfer notify-ahead`).
--
-- The school's choice is recorded on the case when the file is sent, so a receipt that comes
-- back later applies what the school said when it sent: 'full' keeps every record, 'chronology'
-- keeps the dated list of entries (their bodies, notes and attachments go when the receipt
-- comes back), 'none' makes the records due for a two-person disposal from the day of the
-- receipt. retain_until is the review date of what is kept, set on receipt: NULL means the
-- pupil's 25th birthday (the retention schedule works it out). Nothing here is personal.
ALTER TABLE transfer_cases ADD COLUMN retain_after TEXT CHECK (retain_after IN ('full', 'chronology', 'none'));
ALTER TABLE transfer_cases ADD COLUMN retain_for TEXT CHECK (retain_for IN ('1y', 'dob+25y'));
ALTER TABLE transfer_cases ADD COLUMN retain_until TEXT;          -- YYYY-MM-DD; NULL: date of birth + 25 years
ALTER TABLE transfer_cases ADD COLUMN notified_by BIGINT REFERENCES staff(id);
ALTER TABLE transfer_cases ADD COLUMN notified_us BIGINT;

-- A parent's request for their child's educational record (Education (Pupil Information)
-- (England) Regulations 2005: maintained schools, 15 school days, without information relevant
-- to child abuse) is kept beside subject access requests, with the same holds, items, decisions
-- and disclosure log; only its deadline and what it gathers differ.
ALTER TABLE sar_requests ADD COLUMN request_kind TEXT NOT NULL DEFAULT 'subject_access'
    CHECK (request_kind IN ('subject_access', 'educational_record'));
