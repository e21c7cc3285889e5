"""Deployment files: what can be checked without a Docker engine, and
`make install` into a scratch root (issue 3)."""

import os
import re
import subprocess

import yaml

from harness import REPO, fresh_database, pg_execute


def setting_names():
    out = subprocess.run([os.path.join(REPO, "ticketd"), "--print-config"],
                         capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout
    return {line.split(" = ")[0] for line in out.splitlines()}


def test_compose_file_names_only_what_exists():
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert {"kafka", "postgres", "ticketd", "topics"} <= set(services)
    names = setting_names()
    for name, service in services.items():
        assert ":" in service.get("image", "x:pinned"), name
        assert not service.get("image", "").endswith(":latest"), name
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
        for volume in service.get("volumes", []):
            src = volume.split(":")[0]
            assert os.path.exists(os.path.join(REPO, src)), src
    for var in services["ticketd"]["environment"]:
        assert var.startswith("TICKETD_"), var
        key = var[len("TICKETD_"):].lower()
        assert key in names or key == "pg", var
    assert services["ticketd"]["ports"] == ["8080:8080"]
    topics = services["topics"]["command"][0]
    for topic in ("bookings.requests", "bookings.replies", "bookings.dead-letter",
                  "bookings.availability"):
        assert topic in topics
    assert "cleanup.policy=compact" in topics


def test_dockerfile_copies_what_exists():
    with open(os.path.join(REPO, "Dockerfile")) as f:
        text = f.read()
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert os.path.exists(os.path.join(REPO, src)), src
    for image in re.findall(r"^FROM (\S+)", text, re.M):
        assert re.match(r"[\w./-]+:\d", image), image


def test_make_install_into_destdir(tmp_path):
    subprocess.run(["make", "-s", "install", "DESTDIR=%s" % tmp_path, "PREFIX=/usr"],
                   cwd=REPO, check=True, capture_output=True)
    for path in ("usr/bin/ticketd", "usr/bin/ticket-flood", "etc/ticketd/ticketd.conf",
                 "usr/lib/systemd/system/ticketd.service", "usr/share/ticketd/schema.sql",
                 "usr/share/ticketd/migrate-2026-11-26.sql",
                 "usr/share/ticketd/migrate-2026-11-26b.sql",
                 "usr/share/ticketd/migrate-2026-12-01a.sql",
                 "usr/share/ticketd/migrate-2026-12-01b.sql",
                 "usr/share/ticketd/migrate-2026-12-02.sql"):
        assert (tmp_path / path).exists(), path
    unit = (tmp_path / "usr/lib/systemd/system/ticketd.service").read_text()
    assert "ExecStart=/usr/bin/ticketd -c /etc/ticketd/ticketd.conf" in unit
    assert "@" not in unit.split("[Install]")[0].replace("@BINDIR@", "")


def test_migration_of_2026_11_26_replaces_the_request_id_index(stack):
    """A database made before 2026-11-26 (a full index on request_id) ends
    with the schema's partial index, valid; a second run changes nothing."""
    def indexes():
        return dict(stack.query(
            "SELECT c.relname, i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'processed_requests'::regclass"))

    stack.query("DROP INDEX processed_requests_request_id_own_key")
    stack.query("CREATE INDEX processed_requests_request_id ON processed_requests (request_id)")
    for _ in range(2):
        subprocess.run(["psql", stack.pg, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                        os.path.join(REPO, "db", "migrate-2026-11-26.sql")],
                       check=True, capture_output=True)
        assert indexes() == {"processed_requests_pkey": True,
                             "processed_requests_request_id_own_key": True}
    definition = stack.query("SELECT indexdef FROM pg_indexes"
                             " WHERE indexname = 'processed_requests_request_id_own_key'")[0][0]
    assert definition.endswith("(request_id) WHERE (request_id <> idempotency_key)")


def test_migration_2026_11_26b_adds_the_customer_holds_index(stack):
    """A database without the index on a customer's active holds ends with
    the schema's, valid; a second run changes nothing; an invalid leftover
    of an interrupted build is refused, not built around."""
    def migrate(pg):
        return subprocess.run(["psql", pg, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                               os.path.join(REPO, "db", "migrate-2026-11-26b.sql")],
                              capture_output=True, text=True)

    def index(pg):
        return pg_execute(pg, "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
                              " WHERE i.indexrelid = to_regclass('holds_customer_active')")

    with fresh_database(stack) as pg:
        pg_execute(pg, "DROP INDEX holds_customer_active")
        assert index(pg) == []
        for _ in range(2):
            run = migrate(pg)
            assert run.returncode == 0, run.stderr
            (valid, definition), = index(pg)
            assert valid
            assert definition.endswith("(customer, event_id) WHERE (status = 'active'::text)")
        pg_execute(pg, "UPDATE pg_index SET indisvalid = false"
                       " WHERE indexrelid = 'holds_customer_active'::regclass")
        run = migrate(pg)
        assert run.returncode != 0 and "holds_customer_active is INVALID" in run.stderr, run
