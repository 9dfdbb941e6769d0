"""A real Prometheus (Debian's package) on loopback: live scrape of a real node-exporter, and a NAB series
backfilled into the TSDB with promtool and read back through the chunked range query."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nbops_testing import DATASETS, free_port

pytestmark = [pytest.mark.services]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
NAB_FILE = DATASETS / "nab" / "data" / "realKnownCause" / "cpu_utilization_asg_misconfiguration.csv"


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed (.ci/run installs prometheus and prometheus-node-exporter)")


def _wait_port(port, proc, log, tries=300):
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {Path(log).read_text()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened: {Path(log).read_text()[-2000:]}")


class Prom:
    def __init__(self, data_dir: Path, scrape_port: int | None = None, lookback: str = "5m"):
        _need(PROMETHEUS)
        self.dir = Path(tempfile.mkdtemp(prefix="nbops-prom-"))
        self.port = free_port()
        cfg = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        if scrape_port:
            cfg += (f"  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n")
        else:
            cfg += "  []\n"
            cfg = cfg.replace("scrape_configs:\n  []\n", "scrape_configs: []\n")
        (self.dir / "prometheus.yml").write_text(cfg)
        self.log = self.dir / "prometheus.log"
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={data_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             f"--query.lookback-delta={lookback}", "--web.enable-lifecycle"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        import requests

        for _ in range(300):  # ready = TSDB opened
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def node_exporter():
    _need(NODE_EXPORTER)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="nbops-ne-")) / "ne.log"
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(log.parent, ignore_errors=True)


@pytest.fixture
def live_prometheus(node_exporter, tmp_path):
    import requests

    p = Prom(tmp_path / "tsdb", scrape_port=node_exporter)
    while True:  # until a few scrapes are in (polled: as long as a loaded machine needs)
        r = requests.get(f"{p.url}/api/v1/query", params={"query": "count_over_time(up[1m])"}).json()
        if r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 4:
            break
        time.sleep(0.25)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def nab_prometheus(tmp_path_factory):
    """NAB's cpu_utilization_asg_misconfiguration (18,050 points, 5-minute steps) backfilled with promtool."""
    _need(PROMTOOL)
    import pandas as pd

    root = tmp_path_factory.mktemp("nab-tsdb")
    df = pd.read_csv(NAB_FILE)
    ts = pd.Series(pd.to_datetime(df["timestamp"]).to_numpy("datetime64[s]").astype("int64"))  # any unit (pandas 3: us)
    lines = ["# HELP nab_value NAB series", "# TYPE nab_value gauge"]
    lines += [f'nab_value{{file="cpu_asg"}} {v!r} {t}' for t, v in zip(ts, df["value"].astype(float))]
    om = root / "nab.om"
    om.write_text("\n".join(lines) + "\n# EOF\n")
    data = root / "data"
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=2400h", str(om),
                    str(data)], check=True, capture_output=True)
    p = Prom(data, lookback="1m")  # 1m < the 5-minute step: a step with no sample stays empty
    yield p, df, ts
    p.stop()


def test_live_scrape_of_node_exporter(live_prometheus):
    from nbops.telemetry import detect, fetch, incidents

    url = live_prometheus.url
    frame = fetch("prometheus", ["node_load1", "up"], url=url, last="30s", step="1s", progress=False)
    assert set(frame["metric"]) == {"node_load1", "up"}
    assert frame["labels"].str.contains('instance="127.0.0.1:').all() and frame["labels"].str.contains('job="node"').all()
    up = frame[frame["metric"] == "up"]["value"]
    assert len(up) >= 3 and (up == 1.0).all()
    load = frame[frame["metric"] == "node_load1"]["value"]
    assert (load >= 0).all() and (load < 1000).all()
    scored = detect(frame)
    assert scored["score"].between(0, 1).all() or scored["score"].isna().any()
    assert isinstance(incidents(scored), list)


def test_prometheus_errors_are_clear(live_prometheus, monkeypatch):
    from nbops.errors import TelemetryError
    from nbops.telemetry import fetch

    url = live_prometheus.url
    with pytest.raises(TelemetryError, match=r"rejected 'rate\(up\[': .*parse error"):
        fetch("prometheus", "rate(up[", url=url, last="1m", progress=False)
    with pytest.raises(TelemetryError, match="selector no_such_metric_xyz matched no series on "):
        fetch("prometheus", "no_such_metric_xyz", url=url, last="1m", progress=False)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TelemetryError, match="Cannot reach Prometheus at " + dead):
        fetch("prometheus", "up", url=dead, last="1m", progress=False)
    monkeypatch.delenv("NBOPS_PROMETHEUS_URL", raising=False)
    with pytest.raises(TelemetryError, match="NBOPS_PROMETHEUS_URL"):
        fetch("prometheus", "up", last="1m", progress=False)
    monkeypatch.setenv("NBOPS_PROMETHEUS_URL", url)  # the environment is enough
    assert len(fetch("prometheus", "up", last="10s", step="1s", progress=False)) > 0


@pytest.mark.parametrize("query, selector", [
    ("no_such_metric_xyz", "no_such_metric_xyz"),
    ('100 * rate(node_cpu_seconds_total{mode="no_such_mode"}[1m])', 'node_cpu_seconds_total{mode="no_such_mode"}'),
    ('sum by (instance) (rate(up[1m])) / on (instance) group_left (job) no_such_total', "no_such_total"),
    ('{__name__=~"no_such_.*"}', '{__name__=~"no_such_.*"}'),
    ("up > 5", None),  # every selector matches: the comparison left nothing
])
def test_a_selector_that_matches_nothing_is_named_in_one_line(live_prometheus, ip, query, selector):
    from nbops.errors import NbopsError, TelemetryError
    from nbops.telemetry import fetch

    url = live_prometheus.url
    with pytest.raises(TelemetryError) as err:
        fetch("prometheus", query, url=url, last="1m", progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    if selector is None:
        assert msg.startswith(f"{query!r} returned no series on {url}") and "filters them all out" in msg
    else:
        assert msg.startswith(f"selector {selector} matched no series on {url}") and "check the metric name/labels" in msg
        assert err.value.fields["selector"] == selector
    # the magic: that one line, no report and no empty plot
    ip.user_ns.pop("rep", None)
    with pytest.raises(NbopsError, match="matched no series" if selector else "filters them all out"):
        ip.run_line_magic("telemetry", f"--source prometheus --url {url} --query '{query}' --last 1m -o rep")
    assert "rep" not in ip.user_ns
    with pytest.raises(TelemetryError, match="selector no_such_metric_xyz matched no series"):  # instant queries too
        __import__("nbops.telemetry.prometheus", fromlist=["x"]).query_instant("no_such_metric_xyz", url=url)


def test_backfilled_nab_series_equals_csv_through_chunks(nab_prometheus):
    import numpy as np

    from nbops.telemetry import fetch, prometheus

    p, df, ts = nab_prometheus
    start, end = int(ts.iloc[0]), int(ts.iloc[-1])
    assert len(prometheus.chunks(start, end, 300)) == 2  # 18,050 points: more than one query may return
    frame = fetch("prometheus", 'nab_value{file="cpu_asg"}', url=p.url, start=start, end=end, step="5m",
                  progress=True)
    assert len(frame) == len(df)
    got_t = frame["timestamp"].to_numpy("datetime64[s]").astype("int64")
    np.testing.assert_array_equal(got_t, ts.to_numpy())
    np.testing.assert_array_equal(frame["value"].to_numpy(), df["value"].astype(float).to_numpy())
    assert (frame["labels"] == 'file="cpu_asg"').all() and (frame["metric"] == "nab_value").all()


def test_one_chunk_too_big_is_refused_by_prometheus_itself(nab_prometheus):
    """The reason for chunking: Prometheus refuses > 11,000 points per series; nbops never asks for that."""
    import requests

    p, df, ts = nab_prometheus
    r = requests.get(f"{p.url}/api/v1/query_range", params={"query": "nab_value", "start": int(ts.iloc[0]),
                                                             "end": int(ts.iloc[-1]), "step": 300}).json()
    assert r["status"] == "error" and "11,000" in r["error"]


def test_magic_against_backfilled_prometheus(ip, nab_prometheus, client):
    from nbops.telemetry.grouping import Incident

    p, df, ts = nab_prometheus
    ip.run_line_magic("telemetry", f"--source prometheus --url {p.url} --query nab_value --start {int(ts.iloc[0])} "
                                   f"--end {int(ts.iloc[-1])} --step 5m --log -o rep")
    rep = ip.user_ns["rep"]
    assert len(rep.frame) == len(df)
    assert rep.incidents and all(isinstance(i, Incident) for i in rep.incidents)
    run = client.get_run(rep.run_id)
    assert run.data.tags["nbops.kind"] == "telemetry"
    assert run.data.metrics["telemetry.incidents"] == len(rep.incidents)


def test_no_query_means_node_exporter_cpu_and_memory(live_prometheus):
    """The README's `%telemetry --source prometheus --last 1h --alert ...` names no query: the default set
    (node-exporter CPU and memory per instance) is fetched, under the local sampler's metric names."""
    from nbops.telemetry import fetch

    frame = fetch("prometheus", url=live_prometheus.url, last="30s", step="1s", progress=False)
    assert set(frame["metric"]) == {"cpu_utilization_percentage", "memory_usage_percentage"}, set(frame["metric"])
    assert frame["value"].between(0, 100).all() and frame["labels"].str.contains('job="node"').all()
