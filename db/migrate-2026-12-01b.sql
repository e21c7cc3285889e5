-- Step 2 of 2: once every ticketd process runs a version that keeps the
-- held counter (2026-12-01 or later), set each section's counter to the
-- seats of its active holds, then add the constraints that guard it, and
-- apply db/schema.sql again for the views that check it.
--
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/migrate-2026-12-01b.sql
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/schema.sql
--
-- Each section is counted in a transaction of its own, under the row lock
-- the workers take: a worker waits for one section's count at most (one
-- index scan of its active holds), never for the whole table. The
-- constraints are added NOT VALID (a moment's lock) and then validated
-- without blocking writes. Safe to run again: it counts again.
--
-- It refuses to run while an older ticketd is connected: such a process
-- moves remaining without held, and the constraints would refuse its
-- writes.
SET lock_timeout = '2s';
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_stat_activity
               WHERE application_name = 'ticketd'
               AND datname = current_database()) THEN
        RAISE EXCEPTION 'a ticketd older than 2026-12-01 is connected '
            '(application_name ticketd): upgrade every process first';
    END IF;
END $$;

DO $$
DECLARE
    section bigint;
BEGIN
    FOR section IN SELECT id FROM sections ORDER BY id LOOP
        PERFORM 1 FROM sections WHERE id = section FOR UPDATE;
        UPDATE sections SET held = (
            SELECT coalesce(sum(quantity), 0) FROM holds
            WHERE section_id = section AND status = 'active')
        WHERE id = section;
        COMMIT;
    END LOOP;
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conname = 'sections_held_nonnegative') THEN
        ALTER TABLE sections ADD CONSTRAINT sections_held_nonnegative
            CHECK (held >= 0) NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conname = 'sections_held_le_taken') THEN
        ALTER TABLE sections ADD CONSTRAINT sections_held_le_taken
            CHECK (held <= capacity - remaining) NOT VALID;
    END IF;
END $$;
ALTER TABLE sections VALIDATE CONSTRAINT sections_held_nonnegative;
ALTER TABLE sections VALIDATE CONSTRAINT sections_held_le_taken;
