-- The invariant checker for psql: prints every section that breaks it and
-- every request executed twice; both lists are empty when all is well.
--   psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -f db/check.sql
-- (ticket-flood --verify runs the same views and exits non-zero.)
SELECT * FROM section_invariant WHERE NOT ok;
SELECT * FROM duplicate_executions;
