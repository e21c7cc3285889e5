-- For a database without holds_customer_active (made with a db/schema.sql
-- older than this file): add the index on a customer's active holds that
-- the max_per_customer check reads (see there).
-- Any ticketd runs with or without it; with a per-customer limit and many
-- live holds it is much faster with it.
--
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/migrate-2026-11-26b.sql
--
-- Built CONCURRENTLY, so holds keep being written meanwhile; gives up
-- instead of queueing behind a long lock. Safe to run again. If the build
-- is interrupted it leaves an INVALID index: drop it and run this again.
SET lock_timeout = '5s';
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_index
               WHERE indexrelid = to_regclass('holds_customer_active')
               AND NOT indisvalid) THEN
        RAISE EXCEPTION 'holds_customer_active is INVALID (an interrupted '
            'build): DROP INDEX CONCURRENTLY it, then run this file again';
    END IF;
END $$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_customer_active
    ON holds (customer, event_id) WHERE status = 'active';
