-- ticketd schema: events, sections, bookings, holds and processed requests.
--
-- Identifiers and customer names compare byte by byte (COLLATE "C"),
-- whatever the database's locale: their indexes take a booking's inserts
-- on the hot path, and a locale's collation rules cost there and mean
-- nothing for an id.
--
-- The invariant lives here as far as a constraint can hold it:
--   0 <= remaining <= capacity and 0 <= held <= capacity - remaining on
--   every section.
-- The rest (capacity - remaining = confirmed seats + active held seats, and
-- held = active held seats) is checked by db/check.sql.

CREATE SEQUENCE IF NOT EXISTS events_id_seq START 1000;
CREATE SEQUENCE IF NOT EXISTS sections_id_seq START 1000;
CREATE SEQUENCE IF NOT EXISTS bookings_id_seq START 1;
CREATE SEQUENCE IF NOT EXISTS holds_id_seq START 1;

CREATE TABLE IF NOT EXISTS events (
    id          bigint PRIMARY KEY DEFAULT nextval('events_id_seq'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    venue       text CHECK (venue IS NULL OR length(venue) <= 200),
    starts_at   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sections (
    id          bigint PRIMARY KEY DEFAULT nextval('sections_id_seq'),
    event_id    bigint NOT NULL REFERENCES events (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    capacity    integer NOT NULL CHECK (capacity >= 0),
    remaining   integer NOT NULL,
    -- Seats of the section's active holds, kept beside remaining by the
    -- same transactions (booked = capacity - remaining - held): reading a
    -- section's availability costs one row, however many seats it sold.
    held        integer NOT NULL DEFAULT 0,
    -- Raised by every change of remaining or held, in the same UPDATE:
    -- the availability stream's order per section.
    version     bigint NOT NULL DEFAULT 1,
    CONSTRAINT sections_remaining_nonnegative CHECK (remaining >= 0),
    CONSTRAINT sections_remaining_le_capacity CHECK (remaining <= capacity),
    CONSTRAINT sections_held_nonnegative CHECK (held >= 0),
    CONSTRAINT sections_held_le_taken CHECK (held <= capacity - remaining),
    -- The target of the (section_id, event_id) foreign keys below: a hold
    -- or booking names its section and that section's own event.
    CONSTRAINT sections_id_event_id UNIQUE (id, event_id)
);
CREATE INDEX IF NOT EXISTS sections_event_id ON sections (event_id);

CREATE TABLE IF NOT EXISTS holds (
    id          bigint PRIMARY KEY DEFAULT nextval('holds_id_seq'),
    event_id    bigint NOT NULL,
    section_id  bigint NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    customer    text COLLATE "C" NOT NULL
                CHECK (length(customer) BETWEEN 1 AND 254),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'confirmed', 'released', 'expired')),
    expires_at  timestamptz NOT NULL,
    request_key text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
    -- (section_id, event_id) names a section of that event: held per
    -- statement by the triggers at the end of this file.
);
CREATE INDEX IF NOT EXISTS holds_active_expiry ON holds (expires_at)
    WHERE status = 'active';
CREATE INDEX IF NOT EXISTS holds_section_active ON holds (section_id)
    WHERE status = 'active';
-- A customer's live holds in an event, for max_per_customer: without it,
-- each (event, customer) pair of a batch walks every unexpired active hold
-- in holds_active_expiry (200 pairs against 4,652 entries: 66 ms; 13 ms
-- with it). A database without it gets it, without blocking writes, from
-- db/migrate-2026-11-26b.sql.
CREATE INDEX IF NOT EXISTS holds_customer_active ON holds (customer, event_id)
    WHERE status = 'active';

CREATE TABLE IF NOT EXISTS bookings (
    id           bigint PRIMARY KEY DEFAULT nextval('bookings_id_seq'),
    event_id     bigint NOT NULL,
    section_id   bigint NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    customer     text COLLATE "C" NOT NULL
                 CHECK (length(customer) BETWEEN 1 AND 254),
    status       text NOT NULL DEFAULT 'confirmed'
                 CHECK (status IN ('confirmed', 'cancelled')),
    hold_id      bigint REFERENCES holds (id),
    request_key  text COLLATE "C" NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz
    -- (section_id, event_id) names a section of that event: held per
    -- statement by the triggers at the end of this file.
);
-- One booking per confirmed hold; plain bookings (no hold) stay out of it.
CREATE UNIQUE INDEX IF NOT EXISTS bookings_hold_id ON bookings (hold_id)
    WHERE hold_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS bookings_section_id ON bookings (section_id, id);
CREATE INDEX IF NOT EXISTS bookings_event_id ON bookings (event_id, id);
CREATE INDEX IF NOT EXISTS bookings_customer ON bookings (customer, id);

-- One row per executed request: the idempotency record. A request whose
-- key is here is answered with the stored reply and runs nothing.
-- fingerprint is the canonical form of the payload, so that the same key
-- with a different payload can be told apart (IDEMPOTENCY_CONFLICT).
CREATE TABLE IF NOT EXISTS processed_requests (
    idempotency_key text COLLATE "C" PRIMARY KEY,
    request_id      text COLLATE "C" NOT NULL,
    type            text NOT NULL,
    fingerprint     text NOT NULL,
    status          text NOT NULL,
    reply           text NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);
-- GET /requests/{request_id}. A request without an idempotency_key of its
-- own is keyed by its request_id and found through the primary key; only
-- the others need this index, so most requests add one index entry, not
-- two (the full index cost ~30% of the records' insert on the hot path).
-- A database made before 2026-11-26 has a full index on request_id
-- instead: db/migrate-2026-11-26.sql replaces it without blocking writes.
CREATE INDEX IF NOT EXISTS processed_requests_request_id_own_key
    ON processed_requests (request_id) WHERE request_id <> idempotency_key;

-- The invariant, per section: 0 <= remaining <= capacity,
-- capacity - remaining = confirmed seats + seats of active holds, and the
-- held counter equals the seats of active holds (so it cannot drift
-- unseen). `ticket-flood --verify` and the system tests read it; so can you:
--   SELECT * FROM section_invariant WHERE NOT ok;
CREATE OR REPLACE VIEW section_invariant AS
SELECT s.id AS section_id, s.event_id, s.capacity, s.remaining,
       coalesce(b.seats, 0) AS booked, coalesce(h.seats, 0) AS held,
       (s.remaining BETWEEN 0 AND s.capacity
        AND s.capacity - s.remaining = coalesce(b.seats, 0) + coalesce(h.seats, 0)
        AND s.held = coalesce(h.seats, 0)) AS ok,
       s.held AS held_counter
FROM sections s
LEFT JOIN (SELECT section_id, sum(quantity) AS seats FROM bookings
           WHERE status = 'confirmed' GROUP BY section_id) b ON b.section_id = s.id
LEFT JOIN (SELECT section_id, sum(quantity) AS seats FROM holds
           WHERE status = 'active' GROUP BY section_id) h ON h.section_id = s.id;

-- At most once: no request created two bookings or two holds.
CREATE OR REPLACE VIEW duplicate_executions AS
SELECT 'booking' AS kind, request_key, count(*) AS executions
FROM bookings GROUP BY request_key HAVING count(*) > 1
UNION ALL
SELECT 'hold', request_key, count(*)
FROM holds GROUP BY request_key HAVING count(*) > 1;

-- Referential integrity of bookings and holds to their section, held once
-- per statement. A foreign key checks every inserted row; a hot batch
-- inserts hundreds of rows that name one section, so the check runs once
-- per statement over its new rows instead, and takes the same lock a
-- foreign key takes (FOR KEY SHARE) on each section named, once
-- (docs/benchmarks.md has the cost of each). The other side: a section
-- named by a booking or a hold cannot be deleted, re-keyed or truncated,
-- and a booking or hold never moves to another section. The errors are
-- foreign-key violations (SQLSTATE 23503), as a foreign key's would be.
-- A database made before 2026-12-02 has foreign keys instead (both hold);
-- db/migrate-2026-12-02.sql moves it to these.
CREATE OR REPLACE FUNCTION ticketd_rows_name_sections() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    locked bigint;
    missing record;
BEGIN
    -- One query on the common path: lock every section the new rows name
    -- and count them against the pairs named (a section id is unique, so
    -- the counts are equal exactly when every pair names a section of its
    -- event). Only a refusal runs the second query, to name the pair; if
    -- it finds none, the section committed in between (each query has a
    -- snapshot of its own), so lock and count again, as a foreign key
    -- would have seen it.
    FOR attempt IN 1..3 LOOP
        SELECT (SELECT count(*) FROM (SELECT DISTINCT section_id, event_id
                                        FROM new_rows) n),
               (SELECT count(*) FROM (SELECT 1 FROM sections s
                                       WHERE (s.id, s.event_id) IN
                                             (SELECT section_id, event_id FROM new_rows)
                                         FOR KEY SHARE OF s) l)
          INTO named, locked;
        IF locked = named THEN
            RETURN NULL;
        END IF;
        SELECT n.section_id, n.event_id INTO missing
          FROM (SELECT DISTINCT section_id, event_id FROM new_rows) n
         WHERE NOT EXISTS (SELECT FROM sections s
                           WHERE s.id = n.section_id AND s.event_id = n.event_id)
         LIMIT 1;
        EXIT WHEN FOUND;
    END LOOP;
    RAISE EXCEPTION 'insert on table "%" names no section of its event',
        TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = format('Key (section_id, event_id)=(%s, %s) is not '
                              'present in table "sections".',
                              missing.section_id, missing.event_id);
END $$;

CREATE OR REPLACE FUNCTION ticketd_row_keeps_its_section() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a row of "%" never moves to another section',
        TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
END $$;

-- After the row is gone (or re-keyed), so after it waited for every
-- transaction that locked it FOR KEY SHARE: their rows are visible to the
-- check then, in READ COMMITTED. At a stricter isolation the check's
-- snapshot could miss them, so such a change is refused there.
CREATE OR REPLACE FUNCTION ticketd_section_stays() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'delete or re-key sections in READ COMMITTED only'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF EXISTS (SELECT FROM bookings
               WHERE section_id = OLD.id AND event_id = OLD.event_id)
       OR EXISTS (SELECT FROM holds
                  WHERE section_id = OLD.id AND event_id = OLD.event_id) THEN
        RAISE EXCEPTION 'section % is named by bookings or holds', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ticketd_sections_not_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM bookings) OR EXISTS (SELECT FROM holds) THEN
        RAISE EXCEPTION 'sections are named by bookings or holds'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER bookings_name_sections AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ticketd_rows_name_sections();
CREATE OR REPLACE TRIGGER holds_name_sections AFTER INSERT ON holds
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ticketd_rows_name_sections();
CREATE OR REPLACE TRIGGER bookings_keep_section
    BEFORE UPDATE OF section_id, event_id ON bookings FOR EACH ROW
    WHEN (OLD.section_id IS DISTINCT FROM NEW.section_id
          OR OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION ticketd_row_keeps_its_section();
CREATE OR REPLACE TRIGGER holds_keep_section
    BEFORE UPDATE OF section_id, event_id ON holds FOR EACH ROW
    WHEN (OLD.section_id IS DISTINCT FROM NEW.section_id
          OR OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION ticketd_row_keeps_its_section();
CREATE OR REPLACE TRIGGER sections_stay AFTER DELETE ON sections
    FOR EACH ROW EXECUTE FUNCTION ticketd_section_stays();
CREATE OR REPLACE TRIGGER sections_keep_key
    AFTER UPDATE OF id, event_id ON sections FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION ticketd_section_stays();
CREATE OR REPLACE TRIGGER sections_not_truncated BEFORE TRUNCATE ON sections
    FOR EACH STATEMENT EXECUTE FUNCTION ticketd_sections_not_truncated();
