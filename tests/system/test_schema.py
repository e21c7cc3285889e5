"""The database guards a booking on its own, whatever client writes to it:
rows must name an existing section of their own event, a section that has
bookings or holds cannot go or be re-keyed, and the seat counters cannot
leave their range. SQL straight to PostgreSQL, no ticketd."""

import psycopg2
import psycopg2.errors
import pytest

from harness import fresh_database


def seeded(conninfo):
    conn = psycopg2.connect(conninfo)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO events (id, name) VALUES (1, 'a'), (2, 'b')")
    cur.execute("INSERT INTO sections (id, event_id, name, capacity, remaining) "
                "VALUES (10, 1, 's', 10, 9), (11, 1, 'free', 10, 10), (20, 2, 't', 10, 10)")
    cur.execute("INSERT INTO bookings (event_id, section_id, quantity, customer, "
                "request_key) VALUES (1, 10, 1, 'c', 'k1')")
    return conn, cur


def refused(cur, sql, params, error):
    with pytest.raises(error):
        cur.execute(sql, params)


def test_rows_must_name_a_section_of_their_own_event(stack):
    with fresh_database(stack) as conninfo:
        conn, cur = seeded(conninfo)
        booking = ("INSERT INTO bookings (event_id, section_id, quantity, customer, "
                   "request_key) VALUES (%s, %s, 1, 'c', %s)")
        hold = ("INSERT INTO holds (event_id, section_id, quantity, customer, "
                "expires_at, request_key) VALUES (%s, %s, 1, 'c', now(), %s)")
        for sql in (booking, hold):
            refused(cur, sql, (1, 999, "missing"), psycopg2.errors.ForeignKeyViolation)
            # Section 20 exists, but in event 2.
            refused(cur, sql, (1, 20, "other-event"), psycopg2.errors.ForeignKeyViolation)
        # Many rows in one statement, one of them wrong: all refused.
        refused(cur, "INSERT INTO bookings (event_id, section_id, quantity, customer, "
                "request_key) SELECT 1, s, 1, 'c', 'many-' || s FROM unnest(%s) s",
                ([10, 11, 12],), psycopg2.errors.ForeignKeyViolation)
        cur.execute("SELECT count(*) FROM bookings WHERE request_key LIKE 'many-%%'")
        assert cur.fetchone() == (0,)
        refused(cur, "INSERT INTO bookings (event_id, section_id, quantity, customer, "
                "request_key, hold_id) VALUES (1, 10, 1, 'c', 'bad-hold', 424242)", (),
                psycopg2.errors.ForeignKeyViolation)
        conn.close()


def test_a_section_with_bookings_or_holds_stays(stack):
    with fresh_database(stack) as conninfo:
        conn, cur = seeded(conninfo)
        refused(cur, "DELETE FROM sections WHERE id = 10", (),
                psycopg2.errors.ForeignKeyViolation)
        refused(cur, "UPDATE sections SET event_id = 2 WHERE id = 10", (),
                psycopg2.errors.ForeignKeyViolation)
        cur.execute("INSERT INTO holds (event_id, section_id, quantity, customer, "
                    "expires_at, request_key) VALUES (1, 11, 1, 'c', now(), 'h1')")
        cur.execute("UPDATE sections SET remaining = 9, held = 1 WHERE id = 11")
        refused(cur, "DELETE FROM sections WHERE id = 11", (),
                psycopg2.errors.ForeignKeyViolation)
        # One nothing names may go.
        cur.execute("DELETE FROM sections WHERE id = 20")
        assert cur.rowcount == 1
        conn.close()


def test_the_seat_counters_stay_in_their_range(stack):
    with fresh_database(stack) as conninfo:
        conn, cur = seeded(conninfo)
        for sql in ("UPDATE sections SET remaining = -1 WHERE id = 11",
                    "UPDATE sections SET remaining = 11 WHERE id = 11",
                    "UPDATE sections SET held = -1 WHERE id = 11",
                    # held is at most the seats not remaining
                    "UPDATE sections SET held = 2 WHERE id = 10"):
            refused(cur, sql, (), psycopg2.errors.CheckViolation)
        conn.close()


def test_migration_2026_12_02_moves_the_foreign_keys_to_the_triggers(stack):
    """A database made before 2026-12-02 (foreign keys, no triggers):
    db/migrate-2026-12-02.sql refuses until db/schema.sql has added the
    triggers, then drops the foreign keys; the guards hold throughout."""
    import os
    import subprocess
    from harness import REPO

    def psql(conninfo, name):
        return subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                               os.path.join(REPO, "db", name)],
                              capture_output=True, text=True)

    with fresh_database(stack) as conninfo:
        conn, cur = seeded(conninfo)
        for table in ("bookings", "holds"):
            cur.execute("DROP TRIGGER %s_name_sections ON %s" % (table, table))
            cur.execute("ALTER TABLE %s ADD CONSTRAINT %s_section_fkey FOREIGN KEY "
                        "(section_id, event_id) REFERENCES sections (id, event_id)"
                        % (table, table))
        early = psql(conninfo, "migrate-2026-12-02.sql")
        assert early.returncode != 0 and "apply db/schema.sql first" in early.stderr
        assert psql(conninfo, "schema.sql").returncode == 0
        done = psql(conninfo, "migrate-2026-12-02.sql")
        assert done.returncode == 0, done.stderr
        assert psql(conninfo, "migrate-2026-12-02.sql").returncode == 0
        cur.execute("SELECT count(*) FROM pg_constraint WHERE conname IN "
                    "('bookings_section_fkey', 'holds_section_fkey')")
        assert cur.fetchone() == (0,)
        refused(cur, "INSERT INTO bookings (event_id, section_id, quantity, customer, "
                "request_key) VALUES (1, 999, 1, 'c', 'after')", (),
                psycopg2.errors.ForeignKeyViolation)
        refused(cur, "DELETE FROM sections WHERE id = 10", (),
                psycopg2.errors.ForeignKeyViolation)
        conn.close()


def test_a_section_is_deleted_only_in_read_committed(stack):
    """At a stricter isolation the check could miss a booking committed
    meanwhile: the change is refused there instead."""
    with fresh_database(stack) as conninfo:
        conn, cur = seeded(conninfo)
        conn.autocommit = False
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        refused(cur, "DELETE FROM sections WHERE id = 20", (),
                psycopg2.errors.ForeignKeyViolation)
        conn.rollback()
        conn.close()
