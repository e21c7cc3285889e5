"""schemathesis (property-based, from docs/openapi.yaml) against the real
query endpoint, bounded in examples and time: no 5xx, no answer the
document does not describe, no hang (issue 17)."""

import os
import subprocess

from harness import REPO
from test_booking import book, new_event

SCHEMATHESIS = os.path.join(REPO, ".cache", "contract-venv", "bin", "schemathesis")
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
    "negative_data_rejection", "unsupported_method", "allow_header_conformance",
])


def test_schemathesis_finds_nothing(client, ticketd, tmp_path):
    assert os.path.exists(SCHEMATHESIS), "no schemathesis: run scripts/contract-tools.sh"
    # Some rows, so that generated ids find events, bookings and holds.
    event_id, (section_id,) = new_event(client, capacity=50)
    for _ in range(3):
        assert client.request(book(event_id, section_id))["status"] == "confirmed"
    report = tmp_path / "junit.xml"
    cmd = [SCHEMATHESIS, "run", os.path.join(REPO, "docs", "openapi.yaml"),
           "--url", "http://127.0.0.1:%d" % ticketd.http_port,
           "--checks", CHECKS, "--max-examples", "25", "--max-time", "30",
           "--request-timeout", "5", "--max-response-time", "3", "--workers", "1",
           "--seed", "17", "--no-color", "--report", "junit",
           "--report-junit-path", str(report)]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="", NO_COLOR="1")
    run = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=180)
    out = run.stdout + run.stderr
    print(out[-3000:])
    assert run.returncode == 0, out[-6000:]
    assert "No issues found" in out or " passed" in out, out[-3000:]
    # Every operation of the document was exercised.
    for operation in ("GET /events", "GET /events/{id}", "GET /bookings",
                      "GET /bookings/{id}", "GET /holds/{id}", "GET /requests/{request_id}",
                      "GET /healthz", "GET /readyz", "GET /metrics"):
        assert operation in report.read_text(), operation
