"""The API JupyterLab's nbops sidebar reads and writes (docs/server-api.md), in a real Jupyter Server
(pytest-jupyter) over a real SQLite store, with runs made by %%track in a real shell and read back."""
from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from services import mlflow_server  # noqa: F401  (fixture)
from tornado.httpclient import HTTPClientError

SLOW = {"request_timeout": 600}


@pytest.fixture
def jp_server_config(store):
    return {"ServerApp": {"jpserver_extensions": {"nbops": True}},
            "Nbops": {"max_runs": 50, "sample_at_start": False}}


async def get_json(jp_fetch, *path, **params):
    r = await jp_fetch("nbops", "api", *path, params=params, **SLOW)
    assert r.code == 200 and r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


async def post_json(jp_fetch, name, body, **kw):
    r = await jp_fetch("nbops", "api", name, method="POST", body=json.dumps(body), **SLOW, **kw)
    assert r.code == 200
    return json.loads(r.body)


async def refused(jp_fetch, *path, method="GET", body=None, headers=None, **params):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("nbops", "api", *path, method=method, body=body, params=params, headers=headers, **SLOW)
    return e.value


# ---- runs of a notebook: cell ids, data versions, verdicts, links; compare ------------------------------------
CELLS = ["import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3, 4], 'b': [1.0, 2.0, 3.0, 4.0]})\nref = df",
         "%%track -e lab -n base --data df\nlr = 0.1\naccuracy = 0.8",
         "df = df.drop(columns='b').assign(c=['w', 'x', 'y', 'z'])",
         "%%track -e lab -n wider --data df\nimport nbops\ncheck = nbops.validate(df, ref, name='df')\n"
         "lr = 0.2\naccuracy = 0.9\ndepth = 4",
         "%%track -e lab -n broken\nraise ValueError('boom')"]


@pytest.fixture
def lab_runs(ip, jp_root_dir, client, monkeypatch):
    """The notebook lab.ipynb (nbformat 4.5 cell ids) run cell by cell in the real shell, as a kernel of it."""
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    path = os.path.join(str(jp_root_dir), "lab.ipynb")
    nbformat.write(nb, path)
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", path)
    monkeypatch.setenv("NBOPS_WRITE_MODE", "sync")
    for c in CELLS:
        ip.run_cell(c, store_history=True)
    exp = client.get_experiment_by_name("lab")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    return path, {c.source: c.id for c in nb.cells}, runs


async def test_runs_carry_cell_id_data_versions_verdicts_and_link(jp_fetch, lab_runs, client):
    path, ids, stored = lab_runs
    body = await get_json(jp_fetch, "runs", path="lab.ipynb")
    recs = {r["run_name"]: r for r in body["runs"]}
    assert [r["run_name"] for r in body["runs"]] == ["broken", "wider", "base"]        # newest first
    base, wider, broken = recs["base"], recs["wider"], recs["broken"]
    assert base["cell_id"] == ids[CELLS[1]] and wider["cell_id"] == ids[CELLS[3]] and broken["cell_id"] == ids[CELLS[4]]
    assert broken["status"] == "FAILED" and base["status"] == "FINISHED" and base["spooled"] is False
    s = stored["wider"]
    assert wider["run_id"] == s.info.run_id and wider["experiment"] == "lab" and wider["notebook"] == path
    assert wider["params"] == {"depth": "4", "lr": "0.2"} and wider["metrics"]["accuracy"] == pytest.approx(0.9)
    assert wider["duration_s"] == pytest.approx((s.info.end_time - s.info.start_time) / 1000)
    assert wider["url"].endswith(f"#/experiments/{s.info.experiment_id}/runs/{s.info.run_id}")
    ds = s.inputs.dataset_inputs[0].dataset
    assert wider["data"] == [{"name": "df", "digest": ds.digest, "short": wider["data"][0]["short"],
                              "context": "training", "rows": 4, "columns": 2}]
    assert ds.digest.startswith(wider["data"][0]["short"])
    assert base["data"][0]["digest"] != ds.digest
    # the validation the cell ran is its verdict (the tag the validation domain wrote)
    tag = s.data.tags["nbops.validation.df"]
    assert tag.startswith("failed") and wider["verdicts"]["validation"] == [{"data": "df", "passed": False, "status": tag}]
    assert base["verdicts"] == {"drift": None, "validation": [], "evaluation": None}
    # polling: the same state gives the same token, and since= it answers small
    again = await get_json(jp_fetch, "runs", path="lab.ipynb", since=body["updated"])
    assert again["unchanged"] is True and again["runs"] is None and again["updated"] == body["updated"]
    r = await jp_fetch("nbops", "api", "runs", params={"path": "lab.ipynb"}, **SLOW)
    assert r.headers["Etag"] == f'"{body["updated"]}"'
    with pytest.raises(HTTPClientError) as e:                  # If-None-Match: 304, no body
        await jp_fetch("nbops", "api", "runs", params={"path": "lab.ipynb"},
                       headers={"If-None-Match": r.headers["Etag"]}, **SLOW)
    assert e.value.code == 304
    stale = await get_json(jp_fetch, "runs", path="lab.ipynb", since="not-the-token")
    assert [r["run_id"] for r in stale["runs"]] == [r["run_id"] for r in body["runs"]]


async def test_updated_token_changes_when_a_run_is_added(jp_fetch, lab_runs, ip):
    first = await get_json(jp_fetch, "runs", path="lab.ipynb")
    ip.run_cell("%%track -e lab -n later\nloss = 0.3", store_history=True)
    body = await get_json(jp_fetch, "runs", path="lab.ipynb", since=first["updated"])
    assert body.get("unchanged") is None and body["updated"] != first["updated"]
    assert body["runs"][0]["run_name"] == "later"


async def test_drift_verdict_on_the_run_that_checked(jp_fetch, lab_runs, ip, client):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ip.user_ns.update(r1=pd.DataFrame({"x": rng.normal(size=500)}), r2=pd.DataFrame({"x": rng.normal(2, 1, 500)}))
    ip.run_cell("%drift r1 r2 -e lab", store_history=True)
    drift = [r for r in client.search_runs([client.get_experiment_by_name("lab").experiment_id])
             if "nbops.drift.is_drift" in r.data.tags][0]
    rec = await get_json(jp_fetch, "run", drift.info.run_id)
    assert rec["verdicts"]["drift"] == {"is_drift": True, "drifted": ["x"],
                                        "reference": drift.data.tags["nbops.drift.reference"]}
    assert rec["tags"]["nbops.drift.is_drift"] == "true"


async def test_run_detail_has_everything_and_404_for_an_unknown_id(jp_fetch, lab_runs):
    _path, _ids, stored = lab_runs
    s = stored["wider"]
    rec = await get_json(jp_fetch, "run", s.info.run_id)
    assert rec["params"] == dict(s.data.params)
    assert rec["tags"]["nbops.cell_id"] == s.data.tags["nbops.cell_id"]
    assert rec["data"][0]["schema"] == [{"name": "a", "dtype": "int64"}, {"name": "c", "dtype": "string"}] \
        or [c["name"] for c in rec["data"][0]["schema"]] == ["a", "c"]
    assert "notebook" in rec["artifacts"] or any(a.startswith("notebook") for a in rec["artifacts"])
    err = await refused(jp_fetch, "run", "0123456789abcdef0123456789abcdef")
    assert err.code == 404 and "0123456789abcdef" in json.loads(err.response.body)["message"]


async def test_compare_endpoint_and_magic_show_the_same_diff(jp_fetch, lab_runs, ip):
    _path, _ids, stored = lab_runs
    a, b = stored["base"].info.run_id, stored["wider"].info.run_id
    body = await get_json(jp_fetch, "compare", runs=f"{a},{b}")
    assert [r["run_id"] for r in body["runs"]] == [a, b]
    params = {p["key"]: p for p in body["params"]}
    assert params["lr"] == {"key": "lr", "values": ["0.1", "0.2"], "differs": True}
    assert params["depth"]["values"] == [None, "4"]
    acc = next(m for m in body["metrics"] if m["key"] == "accuracy")
    assert acc["values"] == pytest.approx([0.8, 0.9]) and acc["delta"][1] == pytest.approx(0.1)
    (data,) = body["data"]
    assert data["name"] == "df" and data["status"] == "changed"
    diff = data["diffs"][1]
    assert diff["columns_added"] == ["c"] and diff["columns_removed"] == ["b"] and diff["digest_changed"] is True
    assert [v["digest"] for v in data["versions"]] == [stored["base"].inputs.dataset_inputs[0].dataset.digest,
                                                       stored["wider"].inputs.dataset_inputs[0].dataset.digest]
    assert body["differing"] == {"params": 2, "metrics": sum(m["differs"] for m in body["metrics"]), "data": 1}
    # the magic computes the same thing and shows it
    ip.run_line_magic("nbops", f"compare {a} {b} -o cmp")
    cmp = ip.user_ns["cmp"]
    assert json.loads(json.dumps(cmp.to_dict(), default=str)) == body
    html = cmp._repr_html_()
    assert "columns added: c" in html and "lr" in html and "wider" in html
    assert "columns removed: b" in repr(cmp)


@pytest.mark.parametrize("runs, says", [("onlyone", "2 to 10"), ("", "2 to 10")])
async def test_compare_needs_two_runs(jp_fetch, runs, says):
    err = await refused(jp_fetch, "compare", runs=runs)
    assert err.code == 400 and says in json.loads(err.response.body)["message"]


async def test_compare_with_an_unknown_run_is_a_404_naming_it(jp_fetch, lab_runs):
    known = lab_runs[2]["base"].info.run_id
    err = await refused(jp_fetch, "compare", runs=f"{known},0123456789abcdef0123456789abcdef")
    assert err.code == 404 and "0123456789abcdef0123456789abcdef" in json.loads(err.response.body)["message"]


def test_compare_magic_mistake_is_one_line(ip):
    from nbops.errors import NbopsError

    with pytest.raises(NbopsError, match="2 to 10 different run ids"):
        ip.run_line_magic("nbops", "compare abc")
    with pytest.raises(NbopsError, match="did you mean `%nbops compare"):
        ip.run_line_magic("nbops", "runs abc def")


# ---- the spool ----------------------------------------------------------------------------------------------
async def test_a_spooled_run_is_listed_as_spooled(jp_fetch, jp_root_dir, ip, client, monkeypatch):
    path = os.path.join(str(jp_root_dir), "offline.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("%%track -e lab -n offline-run\naccuracy = 0.5")]), path)
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", path)
    monkeypatch.setenv("NBOPS_WRITE_MODE", "sync")
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    ip.run_cell("%%track -e lab -n offline-run\naccuracy = 0.5", store_history=True)
    monkeypatch.delenv("NBOPS_OFFLINE")
    body = await get_json(jp_fetch, "runs", path="offline.ipynb")
    (rec,) = body["runs"]
    assert rec["status"] == "spooled" and rec["spooled"] is True and rec["run_name"] == "offline-run"
    assert rec["metrics"] == {"accuracy": 0.5} and rec["url"] is None and rec["cell_id"]
    detail = await get_json(jp_fetch, "run", rec["run_id"])
    assert detail["status"] == "spooled"
    status = await get_json(jp_fetch, "status")
    assert status["pending"] == 1
    # after `nbops sync` the store has it, once, and the list shows the store's run
    import nbops
    nbops.sync()
    body = await get_json(jp_fetch, "runs", path="offline.ipynb")
    (rec,) = body["runs"]
    (stored,) = client.search_runs([client.get_experiment_by_name("lab").experiment_id],
                                   "attributes.run_name = 'offline-run'")
    assert rec["status"] == "FINISHED" and rec["run_id"] == stored.info.run_id and rec["spooled"] is False


# ---- status ---------------------------------------------------------------------------------------------------
async def test_status_says_the_store_kind_and_the_hosts_incidents(jp_fetch, store):
    body = await get_json(jp_fetch, "status")
    assert body["store_kind"] == "embedded" and body["tracking_uri"] == store
    assert body["store_down"] is None      # a local store: the sidebar's reads judge it
    assert body["pending"] == 0
    inc = body["incidents"]
    assert set(inc) == {"sampling", "active", "items"} and inc["active"] == sum(i["ongoing"] for i in inc["items"])


async def test_status_with_a_server_store_says_server(jp_fetch, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    body = await get_json(jp_fetch, "status")
    assert body["store_kind"] == "server"


@pytest.mark.services
async def test_status_says_when_the_server_store_stops_answering(jp_fetch, monkeypatch, mlflow_server):
    """A real `mlflow server`: the status alone (what the status bar polls, the sidebar closed) says whether it
    answers; stopped, it says so in the sidebar's one line; started again, it answers again."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    assert (await get_json(jp_fetch, "status"))["store_down"] is None
    mlflow_server.stop()
    down = (await get_json(jp_fetch, "status"))["store_down"]
    assert down.startswith(f"The tracking store at {mlflow_server.url} does not answer") and "Start it" in down
    assert "\n" not in down and "HTTPConnection" not in down, down
    mlflow_server.start()
    assert (await get_json(jp_fetch, "status"))["store_down"] is None


# ---- degrade: the store is down -------------------------------------------------------------------------------
@pytest.mark.parametrize("route, params", [("runs", {"path": "x.ipynb"}), ("models", {}),
                                           ("run/0123456789abcdef0123456789abcdef", {}),
                                           ("compare", {"runs": "a,b"})])
async def test_store_down_is_a_503_with_one_line(jp_fetch, monkeypatch, route, params):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")   # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    err = await refused(jp_fetch, *route.split("/"), **params)
    msg = json.loads(err.response.body)["message"]
    assert err.code == 503 and "127.0.0.1:9" in msg and "\n" not in msg
    # what to do, and nothing of MLflow's connection dump (urllib3's pool and object reprs)
    assert "does not answer" in msg and "Start it" in msg and "HTTPConnection" not in msg, msg


@pytest.mark.parametrize("route, body", [("promote", {"model": "churn", "run": "0123456789abcdef0123456789abcdef"}),
                                         ("promote", {"model": "churn", "best": "accuracy", "experiment": "lab"}),
                                         ("promote", {"model": "churn", "version": "1"}),
                                         ("rollback", {"model": "churn"})])
async def test_store_down_promote_and_rollback_are_a_503_with_one_line(jp_fetch, monkeypatch, route, body):
    """A real MLflow tracking URI whose port nothing listens on (a free loopback port, closed again): the dry-run
    preview and the rollback answer one line naming the store, no traceback."""
    from nbops_testing import free_port

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    err = await refused(jp_fetch, route, method="POST", body=json.dumps(body))
    msg = json.loads(err.response.body)["message"]
    assert err.code == 503 and down in msg and "\n" not in msg and "Traceback" not in msg, msg


# ---- registry: models, promote behind gates, rollback; audited as the Jupyter user ----------------------------
def _train(name: str, cols: int) -> str:
    """A tracked run that fits a wine classifier and logs it (as ``%%track --model m`` does)."""
    import nbops
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    with nbops.track("lab-promo", name) as t:
        m = LogisticRegression(max_iter=5000).fit(X[:, :cols], y)
        t.log_metric("accuracy", float(m.score(X[:, :cols], y)))
        t.log_model(m)
    return t.run_id


@pytest.fixture
def trained(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")   # default requirements: same model
    return {"weak": _train("weak", 2), "strong": _train("strong", 13)}


async def test_promote_behind_gates_then_rollback_audited_as_the_jupyter_user(jp_fetch, trained, client,
                                                                               jp_serverapp):
    weak, strong = trained["weak"], trained["strong"]
    assert (await get_json(jp_fetch, "models"))["models"] == []
    # a gate that fails: nothing moves, nothing is registered
    res = await post_json(jp_fetch, "promote", {"model": "wine", "run": weak, "require": ["accuracy>=0.99"],
                                                "dry_run": False})
    assert res["status"] == "gate-failed" and res["moved"] is False and res["passed"] is False
    assert res["gates"][0]["gate"] == "accuracy>=0.99" and res["gates"][0]["passed"] is False
    assert res["gates"][0]["measured"] == pytest.approx(client.get_run(weak).data.metrics["accuracy"])
    assert client.search_model_versions("name='wine'") == []
    # the dry run of a passing gate: the preview, nothing moved
    res = await post_json(jp_fetch, "promote", {"model": "wine", "run": weak, "require": ["accuracy>=0.5"]})
    assert res["status"] == "dry-run" and res["passed"] is True and res["moved"] is False
    assert client.search_model_versions("name='wine'") == []
    # the move, then a better one
    res = await post_json(jp_fetch, "promote", {"model": "wine", "run": weak, "require": ["accuracy>=0.5"],
                                                "reason": "first", "dry_run": False})
    assert res["status"] == "promoted" and res["moved"] is True and res["candidate"]["run_id"] == weak
    res = await post_json(jp_fetch, "promote", {"model": "wine", "best": "accuracy", "experiment": "lab-promo",
                                                "must_beat": "champion", "dry_run": False})
    assert res["status"] == "promoted" and res["candidate"]["run_id"] == strong and res["replaced"] == "1"
    rm = client.get_registered_model("wine")
    assert str(rm.aliases["champion"]) == "2" and str(rm.aliases["previous-champion"]) == "1"
    user = res["who"]     # the Jupyter user of this request (the test's token requests are anonymous users)
    import getpass
    assert user and user not in ("unknown", getpass.getuser())
    mv = client.get_model_version("wine", "2")
    assert mv.run_id == strong
    assert mv.tags["nbops.promote.who"] == user and mv.tags["nbops.promote.who_source"] == "jupyter"
    assert mv.tags["nbops.promote.status"] == "promoted"
    # the models route: aliases -> version -> run
    (model,) = (await get_json(jp_fetch, "models"))["models"]
    aliases = {a["alias"]: a for a in model["aliases"]}
    assert aliases["champion"]["version"] == "2" and aliases["champion"]["run_id"] == strong
    assert aliases["champion"]["run_name"] == "strong" and aliases["champion"]["who"] == user
    assert aliases["previous-champion"]["run_id"] == weak
    assert [v["version"] for v in model["versions"]] == ["2", "1"] and model["versions"][0]["aliases"] == ["champion"]
    # promoting an existing version by number
    res = await post_json(jp_fetch, "promote", {"model": "wine", "version": "1", "alias": "staging", "dry_run": False})
    assert res["status"] == "promoted" and res["version"] == "1"
    assert str(client.get_registered_model("wine").aliases["staging"]) == "1"
    # rollback: previewed, then done
    res = await post_json(jp_fetch, "rollback", {"model": "wine"})
    assert res["status"] == "dry-run" and str(client.get_registered_model("wine").aliases["champion"]) == "2"
    res = await post_json(jp_fetch, "rollback", {"model": "wine", "reason": "regression", "dry_run": False})
    assert res["status"] == "rolled-back" and res["moved"] is True and res["version"] == "1"
    assert str(client.get_registered_model("wine").aliases["champion"]) == "1"
    v1 = client.get_model_version("wine", "1").tags
    assert v1["nbops.promote.action"] == "rollback" and v1["nbops.promote.who"] == res["who"]
    assert res["who"] not in ("unknown", getpass.getuser())
    assert v1["nbops.promote.who_source"] == "jupyter"


@pytest.mark.parametrize("body, says", [
    ({"alias": "champion"}, '"model" is required'),
    ({"model": "wine", "run": "a", "best": "accuracy"}, "exactly one of"),
    ({"model": "wine", "run": "a", "dry_run": "no"}, '"dry_run" must be true or false'),
    ({"model": "wine", "run": "a", "colour": "red"}, "unknown field(s) colour"),
    ({"model": "wine", "run": "a", "require": "accuracy>>1"}, "accuracy>>1"),
])
async def test_promote_mistakes_are_400_with_one_line(jp_fetch, body, says):
    err = await refused(jp_fetch, "promote", method="POST", body=json.dumps(body))
    msg = json.loads(err.response.body)["message"]
    assert err.code == 400 and says in msg and "\n" not in msg


async def test_rollback_without_a_previous_version_is_a_400(jp_fetch):
    err = await refused(jp_fetch, "rollback", method="POST", body=json.dumps({"model": "nope", "dry_run": False}))
    assert err.code == 400 and "nope" in json.loads(err.response.body)["message"]


# ---- auth and XSRF ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["status", "runs", "run/abc", "compare", "models"])
async def test_every_new_get_refuses_without_the_token(jp_fetch, route):
    err = await refused(jp_fetch, *route.split("/"), headers={"Authorization": ""})
    assert err.code == 403


@pytest.mark.parametrize("route", ["promote", "rollback"])
async def test_a_post_needs_auth_and_the_xsrf_token(jp_fetch, jp_serverapp, route):
    body = json.dumps({"model": "nope", "dry_run": True, **({"run": "nope-run"} if route == "promote" else {})})
    err = await refused(jp_fetch, route, method="POST", body=body, headers={"Authorization": ""})
    assert err.code == 403                                        # no token, no cookie
    # a browser session: the login cookie the server sets for a token-authenticated request
    r = await jp_fetch("api", "status", **SLOW)
    cookies = "; ".join(c.split(";", 1)[0] for c in r.headers.get_list("Set-Cookie"))
    assert "username-" in cookies
    err = await refused(jp_fetch, route, method="POST", body=body, headers={"Authorization": "", "Cookie": cookies})
    assert err.code == 403 and "xsrf" in (err.response.body or b"").decode().lower()   # cookie without XSRF
    xsrf = "2|00000000|" + "ab" * 16 + "|1700000000"
    err = await refused(jp_fetch, route, method="POST", body=body, headers={
        "Authorization": "", "Cookie": f"{cookies}; _xsrf={xsrf}", "X-XSRFToken": xsrf})
    assert err.code == 400                                        # through auth and XSRF: the handler's answer
    assert "nope" in json.loads(err.response.body)["message"]
    for name in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"):
        assert name not in err.response.headers                   # no CORS opening


# ---- the status dot: the host's live incidents from the server's own sampler ---------------------------------
@pytest.fixture
def fast_sampler(monkeypatch):
    """The real psutil sampler of nbops.telemetry.local, sampling fast; stopped after the test."""
    pytest.importorskip("psutil")
    from nbops.telemetry import local
    monkeypatch.setenv("NBOPS_TELEMETRY_INTERVAL", "0.2")
    local.shutdown()
    yield local
    local.shutdown()


@pytest.mark.slow
async def test_status_turns_red_while_a_cpu_hog_runs_on_the_host(jp_fetch, fast_sampler):
    """A real incident: other processes (not the server's) take every core; /status says an incident is active
    on the metrics the local source judges, as %telemetry --source local would."""
    import asyncio
    import time

    import numpy as np
    from nbops_testing import Hog

    body = await get_json(jp_fetch, "status")                    # starts the server's sampler
    s = fast_sampler.get_sampler()
    assert body["incidents"]["sampling"] is True and s.running
    t_base = time.time()
    while s.count < 60:                                           # a baseline of the host as it is
        await asyncio.sleep(0.2)
    _, v = s.arrays(since=t_base)
    others = float(np.nanmedian(v[:, s.metrics.index("cpu_utilization_by_others_percentage")]))
    if others >= 50:   # other jobs (a shared machine) hold half the host already: a hog makes no clear step
        pytest.skip(f"the host was not quiet: other processes used {others:.0f}% of it before the hog")
    hog = Hog()
    try:
        t0, n0 = time.time(), s.count
        while True:
            inc = (await get_json(jp_fetch, "status"))["incidents"]
            fresh = [i for i in inc["items"] if i["ongoing"] and i["end"] >= _iso(t0)]
            if fresh or s.count > n0 + 1500:                      # (a bound in samples, not in seconds)
                break
            await asyncio.sleep(0.2)
    finally:
        hog.stop()
    assert fresh, f"no ongoing incident after the hog started: {inc}"
    assert inc["active"] >= 1
    assert {"cpu_utilization_by_others_percentage", "load_by_others",
            "process_cpu_starved_percentage"} & {m for i in fresh for m in i["metrics"]}


def _iso(t: float) -> str:
    from nbops.telemetry.lifecycle import iso
    return iso(t)
