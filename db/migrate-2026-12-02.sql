-- For a database made before 2026-12-02: bookings and holds name their
-- section through the statement-level triggers of db/schema.sql instead of
-- foreign keys checked row by row (the same integrity; see there). Apply
-- db/schema.sql first (it adds the triggers beside the foreign keys: both
-- hold meanwhile), then this file drops the foreign keys.
--
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/schema.sql
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/migrate-2026-12-02.sql
--
-- Dropping a constraint changes the catalog only, but needs the tables'
-- lock for that moment: each waits at most lock_timeout behind running
-- transactions and gives up rather than hold the workers up longer (run it
-- again). Safe to run again.
SET lock_timeout = '2s';
DO $$
BEGIN
    IF (SELECT count(*) FROM pg_trigger
        WHERE tgname IN ('bookings_name_sections', 'holds_name_sections',
                         'sections_stay', 'sections_keep_key')) <> 4 THEN
        RAISE EXCEPTION 'the integrity triggers are missing: apply '
            'db/schema.sql first';
    END IF;
END $$;
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_section_fkey;
ALTER TABLE holds DROP CONSTRAINT IF EXISTS holds_section_fkey;
