"""Incidents routed to a real Alertmanager (Debian's prometheus-alertmanager, started here on a free loopback port
with a temporary config) whose receiver is a webhook server inside the test: what the on-call route receives is
asserted -- grouped into one notification, re-sends deduplicated, resolved once the incidents are over."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from nbops_testing import free_port

pytestmark = [pytest.mark.services]

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


class Webhook:
    """A small HTTP server collecting the JSON bodies Alertmanager posts."""

    def __init__(self):
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, pred, what: str, deadline: float = 300.0):
        """Poll until a received body satisfies ``pred`` (the deadline only stops a broken test hanging)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            hit = [b for b in list(self.bodies) if pred(b)]
            if hit:
                return hit[0]
            time.sleep(0.1)
        raise AssertionError(f"the webhook never received {what}; got {json.dumps(self.bodies)[:2000]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    def __init__(self, receiver_url: str):
        if not os.path.exists(ALERTMANAGER):
            pytest.skip(f"{ALERTMANAGER} not installed (.ci/run installs prometheus-alertmanager)")
        self.dir = Path(tempfile.mkdtemp(prefix="nbops-am-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # short waits so a notification follows a change at once; grouping by alertname only
        (self.dir / "am.yml").write_text(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n"
            "  repeat_interval: 4h\nreceivers:\n  - name: hook\n    webhook_configs:\n"
            f"      - url: {receiver_url}\n        send_resolved: true\n")
        self.log = self.dir / "am.log"
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={self.dir / 'am.yml'}", f"--storage.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)

    def alerts(self) -> list[dict]:
        r = requests.get(self.url + "/api/v2/alerts", params={"filter": 'alertname="NbopsIncident"'}, timeout=5)
        r.raise_for_status()
        return r.json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def alertmanager(webhook):
    am = Alertmanager(webhook.url)
    yield am
    am.stop()


def two_hosts(start: float, n: int, faulty_from: int, faulty_to: int) -> pd.DataFrame:
    """cpu of hosts a and b, one sample a second from ``start``; both abnormal in [faulty_from, faulty_to)."""
    t = pd.to_datetime(np.arange(n) + start, unit="s")
    rng = np.random.default_rng(0)
    rows = []
    for host, level in (("a", 20.0), ("b", 35.0)):
        y = level + rng.normal(0, 1.0, n)
        y[faulty_from:faulty_to] += 60
        rows.append(pd.DataFrame({"timestamp": t, "metric": "cpu_utilization_percentage",
                                  "labels": f'host="{host}"', "value": y}))
    return pd.concat(rows, ignore_index=True)


def test_incidents_reach_alertmanager_grouped_deduplicated_then_resolved(ip, client, alertmanager, webhook):
    # 1. the hosts are abnormal right now: two incidents, still going on
    start = time.time() - 199
    ip.user_ns["cpu"] = two_hosts(start, 200, 190, 200)  # the last sample is now
    for _ in range(2):  # sent twice: still two alerts
        ip.run_line_magic("telemetry", f"--source cpu --detector robust --alert {alertmanager.url} -o rep")
    rep = ip.user_ns["rep"]
    assert len(rep.incidents) == 2 and rep.alerts.ok and rep.alerts.firing == 2, repr(rep)
    held = alertmanager.alerts()
    assert len(held) == 2 and {a["labels"]["host"] for a in held} == {"a", "b"}
    assert all(a["status"]["state"] == "active" for a in held)
    firing = webhook.wait_for(lambda b: b["status"] == "firing", "a firing notification")
    assert len(firing["alerts"]) == 2 and firing["groupLabels"] == {"alertname": "NbopsIncident"}  # grouped
    for a in firing["alerts"]:
        lab, ann = a["labels"], a["annotations"]
        assert lab["alertname"] == "NbopsIncident" and lab["metric"] == "cpu_utilization_percentage"
        assert lab["instance"] == lab["host"] and lab["severity"] in ("critical", "warning", "info")
        assert lab["incident"] in rep.keys.values()
        assert "cpu_utilization_percentage abnormal on" in ann["summary"] and "(ongoing)" in ann["summary"]
        assert ann["metrics"] == "cpu_utilization_percentage" and ann["end"] == "ongoing"
        run_id = ann["run"].removeprefix("runs:/")
        assert client.get_run(run_id).data.metrics["telemetry.incidents"] == 2  # the evidence is in MLflow
    keys = {a["labels"]["incident"] for a in firing["alerts"]}
    # 2. later: both hosts back to normal for longer than the gap -> the same alerts, now with endsAt
    ip.user_ns["cpu"] = two_hosts(start, 230, 190, 200)
    ip.run_line_magic("telemetry", f"--source cpu --detector robust --alert {alertmanager.url} -o rep2")
    rep2 = ip.user_ns["rep2"]
    assert set(rep2.keys.values()) == keys and rep2.alerts.resolved == 2, repr(rep2)
    resolved = webhook.wait_for(lambda b: b["status"] == "resolved", "a resolved notification")
    assert {a["labels"]["incident"] for a in resolved["alerts"]} == keys
    assert all(a["status"] == "resolved" for a in resolved["alerts"])
    assert all(a["annotations"]["end"] != "ongoing" for a in resolved["alerts"])
    assert alertmanager.alerts() == []  # nothing active any more
    k = rep2.kpis()
    assert k["resolved"] == 2 and k["mean_duration_s"] >= 0 and k["alert_reduction_pct"] > 0


def test_an_incident_first_seen_over_fires_then_resolves(ip, alertmanager, webhook, monkeypatch):
    """History analysed after the fact: Alertmanager drops an alert whose first sight is resolved, so nbops
    keeps it firing for NBOPS_ALERT_MIN_FIRING and the route gets firing, then resolved."""
    monkeypatch.setenv("NBOPS_ALERTMANAGER_URL", alertmanager.url)
    monkeypatch.setenv("NBOPS_ALERT_MIN_FIRING", "8s")  # well past group_wait (1s), so the first flush fires
    ip.user_ns["old"] = two_hosts(time.time() - 86400, 300, 100, 110)
    ip.run_line_magic("telemetry", "--source old --detector robust --alert -o rep")
    rep = ip.user_ns["rep"]
    assert rep.alerts.ok and rep.alerts.resolved == 2 and all("endsAt" in a for a in rep.alerts.alerts)
    assert rep.kpis()["mean_time_to_detect_s"] is None  # history: detection time says nothing
    firing = webhook.wait_for(lambda b: b["status"] == "firing", "a firing notification")
    assert len(firing["alerts"]) == 2
    webhook.wait_for(lambda b: b["status"] == "resolved" and len(b["alerts"]) == 2, "the resolution")
