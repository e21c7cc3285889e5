-- For a database made with a db/schema.sql from before 2026-11-26: replace
-- the full index on processed_requests.request_id with the partial one the
-- current schema has (see there). Deploy the new ticketd first: its
-- GET /requests/{request_id} uses either index, an older one only the old.
--
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/migrate-2026-11-26.sql
--
-- Both steps run CONCURRENTLY, so bookings keep being written while the
-- new index is built; each gives up instead of queueing behind a long
-- lock. Safe to run again: a step already done is skipped. If the build
-- is interrupted it leaves an INVALID index: drop it and run this again.
SET lock_timeout = '5s';
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_index
               WHERE indexrelid =
                     to_regclass('processed_requests_request_id_own_key')
               AND NOT indisvalid) THEN
        RAISE EXCEPTION 'processed_requests_request_id_own_key is INVALID '
            '(an interrupted build): DROP INDEX CONCURRENTLY it, then run '
            'this file again';
    END IF;
END $$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_requests_request_id_own_key
    ON processed_requests (request_id) WHERE request_id <> idempotency_key;
DROP INDEX CONCURRENTLY IF EXISTS processed_requests_request_id;
