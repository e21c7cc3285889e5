-- Step 1 of 2 for a database made before 2026-12-01: the sections' held
-- counter and version (see db/schema.sql), added in place. Run it before
-- deploying a ticketd that reads them; older ticketds keep running and
-- ignore both.
--
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/migrate-2026-12-01a.sql
--
-- Adding a column with a constant default only changes the catalog (no
-- table rewrite), but it needs the table's lock for that moment: it waits
-- at most lock_timeout behind the workers' transactions and then gives up
-- (run it again), so workers are held up no longer than that. Safe to run
-- again.
SET lock_timeout = '2s';
ALTER TABLE sections ADD COLUMN IF NOT EXISTS held integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
