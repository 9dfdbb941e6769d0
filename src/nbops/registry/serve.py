"""``%promote ... --serve-check``: serve the candidate the way it will be deployed before its alias moves.

Starts ``mlflow models serve -m <model uri> --env-manager local`` on a free loopback port (its own process
group), waits until ``/ping`` answers (or the process dies, or ``timeout`` passes), POSTs a sample of the
reference data to ``/invocations``, compares the answers with the predictions of the same model loaded in
process (``mlflow.pyfunc``), times single-row requests after a warm-up, and always stops the server.

The sample: ``data=`` when given, else what ``%evaluate`` kept on the candidate run (``evaluation/sample.parquet``),
else the run's data snapshot (``%%track --data df --snapshot``) restricted to the model's input columns, else
the model's input example.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("nbops")
SAMPLE_ROWS = 50
DEFAULT_TIMEOUT = float(os.environ.get("NBOPS_SERVE_TIMEOUT", "300"))


@dataclass
class ServeCheck:
    passed: bool
    detail: str
    model_uri: str
    rows: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    max_abs_diff: float | None = None
    port: int | None = None
    startup_s: float | None = None
    log_tail: str = ""
    notes: list = field(default_factory=list)

    def tags(self) -> dict:
        """The model-version tags a passed check leaves (``nbops.serve_check=passed`` and the latency)."""
        out = {"nbops.serve_check": "passed" if self.passed else "failed",
               "nbops.serve_check.rows": str(self.rows)}
        if self.latency_p50_ms is not None:
            out["nbops.serve_check.latency_p50_ms"] = f"{self.latency_p50_ms:.3f}"
            out["nbops.serve_check.latency_p95_ms"] = f"{self.latency_p95_ms:.3f}"
        return out

    def __repr__(self) -> str:
        return f"serve check {'passed' if self.passed else 'FAILED'}: {self.detail}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _payload(df) -> bytes:
    split = json.loads(df.to_json(orient="split", date_format="iso", index=False))
    return json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}}).encode()


def _post(url: str, body: bytes, timeout: float = 60):
    import requests

    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)


def _wait_ready(proc, url: str, deadline: float) -> str | None:
    """None when ``url`` answers 200; else why not (the process exited, or the deadline passed)."""
    import requests

    while True:
        if proc.poll() is not None:
            return f"the server exited with code {proc.returncode} before answering"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return None
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            return "the server did not answer /ping in time (NBOPS_SERVE_TIMEOUT seconds)"
        try:
            proc.wait(timeout=0.2)  # poll interval: returns at once if the server dies
        except subprocess.TimeoutExpired:
            pass


def _stop(proc) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)


def _compare(served, local) -> tuple[bool, float | None, str]:
    import numpy as np

    a, b = np.asarray(served), np.asarray(local)
    if a.ndim > 1 and a.shape[-1] == 1:
        a = a.reshape(a.shape[0])
    if b.ndim > 1 and b.shape[-1] == 1:
        b = b.reshape(b.shape[0])
    if a.shape != b.shape:
        return False, None, f"the server answered {a.shape} predictions, in process gives {b.shape}"
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        diff = float(np.max(np.abs(a.astype(float) - b.astype(float)))) if a.size else 0.0
        ok = bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9, equal_nan=True))
        return ok, diff, "" if ok else f"served and in-process predictions differ by up to {diff:.6g}"
    same = [str(x) == str(y) for x, y in zip(a.ravel(), b.ravel())]
    ok = all(same)
    return ok, None, "" if ok else f"{same.count(False)} of {len(same)} served predictions differ from in process"


def serve_check(model_uri: str, sample, *, timeout: float | None = None, requests_n: int = 20,
                tracking_uri: str | None = None) -> ServeCheck:
    """Serve ``model_uri`` for real and check it against in-process predictions on ``sample`` (a DataFrame)."""
    import mlflow.pyfunc
    import numpy as np

    from .. import config

    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    tracking_uri = tracking_uri or config.settings().tracking_uri
    sample = sample.head(SAMPLE_ROWS).reset_index(drop=True)
    res = ServeCheck(False, "", model_uri, rows=len(sample))
    if len(sample) == 0:
        res.detail = "no rows to send"
        return res
    try:
        local = mlflow.pyfunc.load_model(model_uri).predict(sample)
    except Exception as exc:  # noqa: BLE001
        res.detail = f"the model does not predict on the sample in process: {type(exc).__name__}: {str(exc)[:200]}"
        return res
    port = res.port = free_port()
    # mlflow starts `uvicorn` by name: the interpreter's own bin folder first (a venv that is not activated)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    logf = tempfile.NamedTemporaryFile(prefix="nbops-serve-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        why = _wait_ready(proc, f"{base}/ping", t0 + timeout)
        res.startup_s = time.monotonic() - t0
        if why:
            res.detail = why
            return res
        body = _payload(sample)
        r = _post(f"{base}/invocations", body)
        if r.status_code != 200:
            res.detail = f"/invocations answered HTTP {r.status_code}: {r.text[:300]}"
            return res
        served = r.json().get("predictions")
        ok, res.max_abs_diff, why = _compare(served, local)
        if not ok:
            res.detail = why
            return res
        times = []
        one = [_payload(sample.iloc[[i % len(sample)]]) for i in range(requests_n + 1)]
        _post(f"{base}/invocations", one[0])  # warm-up
        for b in one[1:]:
            t = time.perf_counter()
            rr = _post(f"{base}/invocations", b)
            times.append((time.perf_counter() - t) * 1000)
            if rr.status_code != 200:
                res.detail = f"a single-row request answered HTTP {rr.status_code}: {rr.text[:200]}"
                return res
        res.latency_p50_ms, res.latency_p95_ms = (float(x) for x in np.percentile(times, [50, 95]))
        res.passed = True
        diff = f", max |diff| {res.max_abs_diff:.3g}" if res.max_abs_diff is not None else ""
        res.detail = (f"served on 127.0.0.1:{port} (up in {res.startup_s:.1f} s); {len(sample)} rows match the "
                      f"in-process predictions{diff}; single-row latency p50 {res.latency_p50_ms:.1f} ms, p95 "
                      f"{res.latency_p95_ms:.1f} ms over {len(times)} requests")
        return res
    except Exception as exc:  # noqa: BLE001 - any failure is a failed check, said in one line
        res.detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        return res
    finally:
        _stop(proc)
        logf.close()
        try:
            res.log_tail = Path(logf.name).read_text(errors="replace")[-2000:]
            os.unlink(logf.name)
        except OSError:
            pass
        if not res.passed and res.log_tail:
            last = [ln for ln in res.log_tail.splitlines() if ln.strip()][-1:]
            if last:
                res.detail += f" (server log: {last[0][:200]})"


def sample_for(client, cand, data=None):
    """The rows sent to the server (see the module docs); None when there is nothing to send."""
    import pandas as pd

    if data is not None:
        return data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    import mlflow.artifacts

    from ..tracking.writer import get_writer

    uri = get_writer().settings.tracking_uri
    with tempfile.TemporaryDirectory(prefix="nbops-serve-") as tmp:
        try:
            paths = [a.path for a in client.list_artifacts(cand.run_id, "evaluation")]
        except Exception:  # noqa: BLE001
            paths = []
        if "evaluation/sample.parquet" in paths:
            from ..display.progress import no_transfer_bars

            with no_transfer_bars():
                local = mlflow.artifacts.download_artifacts(run_id=cand.run_id, artifact_path="evaluation/sample.parquet",
                                                            dst_path=tmp, tracking_uri=uri)
            return pd.read_parquet(local)
    try:
        from ..data import load_snapshot

        frame = load_snapshot(cand.run_id)
    except Exception:  # noqa: BLE001 - no snapshot, or several
        frame = None
    if frame is not None:
        try:
            import mlflow.pyfunc

            raw = mlflow.pyfunc.load_model(cand.model_uri).get_raw_model()
            names = getattr(raw, "feature_names_in_", None)
            if names is not None and all(n in frame.columns for n in names):
                return frame[list(names)]
        except Exception:  # noqa: BLE001
            pass
        return frame
    try:
        from mlflow.models import Model

        ex = Model.load(cand.model_uri).load_input_example(None)
        if ex is not None:
            return pd.DataFrame(ex)
    except Exception:  # noqa: BLE001
        pass
    return None
