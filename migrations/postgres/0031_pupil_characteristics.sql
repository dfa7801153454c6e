-- Pupil characteristics (issue 21): the vulnerable groups a report counts (free school meals,
-- pupil premium, in care, previously in care, EAL, SEN status N/K/E, service child, young
-- carer), read from optional columns of the directory import and kept with their history: a
-- value holds from `from_us` until `to_us` (NULL while current), so a report counts a pupil
-- as they were when an incident happened. Values are in clear, as year group and house are, so
-- reports count them with GROUP BY and open nothing.
CREATE TABLE pupil_characteristics (
    id              BIGSERIAL PRIMARY KEY,
    pupil_id        BIGINT NOT NULL REFERENCES pupils(id),
    characteristic  TEXT NOT NULL CHECK (characteristic IN
                    ('fsm', 'pupil_premium', 'in_care', 'previously_in_care', 'eal', 'sen', 'service_child', 'young_carer')),
    value           TEXT NOT NULL,     -- yes | no; sen: N | K | E
    from_us         BIGINT NOT NULL,
    to_us           BIGINT
);
CREATE INDEX pupil_characteristics_pupil ON pupil_characteristics (pupil_id, characteristic, from_us);
