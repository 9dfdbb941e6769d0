"""The nbops server extension in a real Jupyter Server (pytest-jupyter), reading a real MLflow store."""
from __future__ import annotations

import json
import os

import pytest
from tornado.httpclient import HTTPClientError

from nbops.server.extension import Nbops

# The first request imports mlflow and creates the store's tables: give it room (no test limit).
SLOW = {"request_timeout": 600}


@pytest.fixture
def jp_server_config(store):
    return {"ServerApp": {"jpserver_extensions": {"nbops": True}},
            "Nbops": {"max_runs": 50, "sample_at_start": False}}


def make_run(notebook: str, name: str, acc: float, experiment: str = "api-test") -> str:
    import nbops
    with nbops.track(experiment, name, tags={"mlflow.source.name": notebook, "mlflow.source.type": "NOTEBOOK"}) as t:
        t.log_param("depth", 3)
        t.log_metric("accuracy", acc)
    return t.run_id


async def get_json(jp_fetch, name, **params):
    r = await jp_fetch("nbops", "api", name, params=params, **SLOW)
    assert r.code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


async def refused(jp_fetch, name, headers, **params):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("nbops", "api", name, params=params, headers=headers, **SLOW)
    return e.value


@pytest.mark.parametrize("route", ["status", "runs", "telemetry"])
async def test_every_route_refuses_a_request_without_the_token(jp_fetch, route):
    err = await refused(jp_fetch, route, {"Authorization": ""})
    assert err.code == 403
    err = await refused(jp_fetch, route, {"Authorization": "token not-the-token"})
    assert err.code == 403


async def test_token_in_query_is_accepted_like_any_jupyter_api(jp_fetch, jp_serverapp):
    token = jp_serverapp.identity_provider.token
    r = await jp_fetch("nbops", "api", "status", params={"token": token}, headers={"Authorization": ""}, **SLOW)
    assert r.code == 200


async def test_status_reports_the_configured_store(jp_fetch, store):
    body = await get_json(jp_fetch, "status")
    assert store in body["store"]
    assert body["experiment"] == "Default"
    assert body["versions"]["nbops"] == "0.1.0"
    assert body["extension"]["max_runs"] == 50 and body["extension"]["tracking_uri"] is None


async def test_runs_of_one_notebook_newest_first_read_back_from_mlflow(jp_fetch, jp_root_dir, client, store):
    nb = os.path.join(str(jp_root_dir), "sub", "train.ipynb")
    first = make_run(nb, "first", 0.81)
    second = make_run(nb, "second", 0.93)
    other = make_run(os.path.join(str(jp_root_dir), "other.ipynb"), "other", 0.5)
    body = await get_json(jp_fetch, "runs", path="sub/train.ipynb")
    ids = [r["run_id"] for r in body["runs"]]
    assert ids == [second, first]                       # newest first, the other notebook left out
    assert other not in ids
    rec = body["runs"][0]
    stored = client.get_run(second)                     # what MLflow has, field by field
    assert rec["run_name"] == stored.info.run_name == "second"
    assert rec["status"] == stored.info.status == "FINISHED"
    assert rec["params"] == {"depth": "3"}
    assert rec["metrics"]["accuracy"] == pytest.approx(stored.data.metrics["accuracy"])
    assert body["store"] == store and body["path"] == "sub/train.ipynb"
    # the absolute spelling finds the same runs; n limits them
    body = await get_json(jp_fetch, "runs", path=nb, n="1")
    assert [r["run_id"] for r in body["runs"]] == [second]
    # no path: every notebook's runs
    body = await get_json(jp_fetch, "runs", n="10")
    assert {first, second, other} <= {r["run_id"] for r in body["runs"]}


async def test_runs_matches_a_relative_source_name_too(jp_fetch):
    rid = make_run("rel/nb.ipynb", "relative", 0.7)
    body = await get_json(jp_fetch, "runs", path="rel/nb.ipynb")
    assert [r["run_id"] for r in body["runs"]] == [rid]


async def test_runs_of_a_notebook_without_runs_is_empty(jp_fetch):
    body = await get_json(jp_fetch, "runs", path="never-tracked.ipynb")
    assert body["runs"] == []


@pytest.mark.parametrize("n, says", [("abc", "not a whole number"), ("0", "out of range"), ("51", "max_runs=50")])
async def test_bad_n_is_a_400_that_says_what_to_send(jp_fetch, n, says):
    err = await refused(jp_fetch, "runs", None, path="x.ipynb", n=n)
    assert err.code == 400
    assert says in json.loads(err.response.body)["message"]


async def test_telemetry_bad_duration_is_a_400(jp_fetch):
    err = await refused(jp_fetch, "telemetry", None, last="yesterday")
    assert err.code == 400
    assert "last=90s" in json.loads(err.response.body)["message"]


async def test_unreachable_store_is_a_503_naming_it(jp_fetch, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")   # discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    err = await refused(jp_fetch, "runs", None, path="x.ipynb")
    assert err.code == 503
    assert "127.0.0.1:9" in json.loads(err.response.body)["message"]


def test_every_setting_is_configurable_and_documented():
    traits = Nbops.class_traits(config=True)
    assert {"tracking_uri", "max_runs", "default_runs", "telemetry", "sample_at_start", "workers"} <= set(traits)
    for name, trait in traits.items():
        assert trait.help and len(trait.help) > 20, name


def test_bad_setting_is_refused_with_its_name():
    from traitlets import TraitError
    with pytest.raises(TraitError, match="Nbops.max_runs must be at least 1"):
        Nbops(max_runs=0)


@pytest.fixture
def host_sampler(monkeypatch):
    """The real psutil sampler of nbops.telemetry.local, sampling fast; stopped after the test."""
    pytest.importorskip("psutil")
    from nbops.telemetry import local
    monkeypatch.setenv("NBOPS_TELEMETRY_INTERVAL", "0.1")
    local.shutdown()
    yield local
    local.shutdown()


async def test_telemetry_serves_the_hosts_own_samples(jp_fetch, host_sampler):
    import asyncio
    import socket

    body = await get_json(jp_fetch, "telemetry")
    assert body["host"] == socket.gethostname() and body["count"] >= 1
    assert "system_memory_usage_megabytes" in body["metrics"]      # (CPU % needs two samples to exist)
    s = next(x for x in body["samples"] if x["metric"] == "system_memory_usage_megabytes")
    assert s["timestamp"].endswith("+00:00") and s["value"] > 0
    sampler = host_sampler.get_sampler()
    assert sampler.running                                          # the same sampler %telemetry uses
    await asyncio.sleep(1.0)                                        # let it take a few more samples
    body = await get_json(jp_fetch, "telemetry", metric="cpu_utilization_p*")
    assert body["metrics"] == ["cpu_utilization_percentage"] and body["count"] >= 3
    cpu = sampler.frame(metrics=["cpu_utilization_percentage"])
    served = [x["value"] for x in body["samples"]]
    assert served == pytest.approx(cpu["value"].tolist()[:len(served)])   # what the sampler holds, in order
    recent = await get_json(jp_fetch, "telemetry", metric="cpu_utilization_p*", last="300ms")
    assert 1 <= recent["count"] < body["count"] + 10
    assert min(x["timestamp"] for x in recent["samples"]) > min(x["timestamp"] for x in body["samples"])


async def test_telemetry_unknown_metric_lists_the_known_ones(jp_fetch, host_sampler):
    err = await refused(jp_fetch, "telemetry", None, metric="gpu_temperature")
    assert err.code == 400
    assert "cpu_utilization_percentage" in json.loads(err.response.body)["message"]
