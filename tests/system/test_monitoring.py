"""monitoring/: the alert rules pass `promtool check rules` and their tests
(`promtool test rules`), and the dashboard and the rules only use metrics
that ticketd's /metrics shows (issue 17)."""

import json
import os
import re
import shutil
import subprocess

import yaml

from harness import REPO

MONITORING = os.path.join(REPO, "monitoring")
PROMQL_WORDS = {"sum", "by", "rate", "deriv", "increase", "histogram_quantile", "and",
                "or", "up", "le", "instance", "job", "status", "type", "without"}


def promtool(*args, cwd=MONITORING):
    assert shutil.which("promtool"), "promtool missing (Debian's prometheus, scripts/deps.sh)"
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_alert_rules_check_and_their_tests_pass(tmp_path):
    run = promtool("check", "rules", "alerts.yml")
    assert run.returncode == 0 and "SUCCESS: 6 rules found" in run.stdout, run.stdout + run.stderr
    run = promtool("test", "rules", "alerts.test.yml")
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr
    # The tests can fail: a p99 threshold of 5 s does not fire on 0.5-1 s.
    with open(os.path.join(MONITORING, "alerts.yml")) as f:
        rules = f.read()
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.25", "> 5"))
    shutil.copy(os.path.join(MONITORING, "alerts.test.yml"), tmp_path)
    run = promtool("test", "rules", "alerts.test.yml", cwd=str(tmp_path))
    assert run.returncode != 0 and "TicketdLatencyP99High" in run.stdout + run.stderr


def dashboard_exprs():
    with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    # Grafana's variables, as a query would see them.
    return [e.replace("$__rate_interval", "5m").replace("$job", "ticketd")
            .replace("$instance", ".*") for e in exprs]


def alert_exprs():
    with open(os.path.join(MONITORING, "alerts.yml")) as f:
        return [r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def test_dashboard_queries_are_promql(tmp_path):
    """promtool parses each panel's query (as a recording rule)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:panel_%d" % i, "expr": e}
        for i, e in enumerate(dashboard_exprs())]}]}
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump(rules))
    run = promtool("check", "rules", "dashboard-rules.yml", cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr


def test_dashboard_and_alerts_use_only_shipped_metrics(ticketd):
    status, text = ticketd.http("/metrics")
    assert status == 200
    shipped = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            shipped.add(name)
            if kind == "histogram":
                shipped |= {name + "_bucket", name + "_sum", name + "_count"}
    used = set()
    for expr in dashboard_exprs() + alert_exprs():
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
        used |= {w for w in re.findall(r"[a-z_][a-z0-9_]*", expr) if w not in PROMQL_WORDS}
    assert used - {"up"} <= shipped, sorted(used - shipped)
    assert len(used) >= 15, sorted(used)
