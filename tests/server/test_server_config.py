"""Settings from the server's config reach the extension: c.Nbops.* and the telemetry switch."""
from __future__ import annotations

import json
import os

import pytest
from tornado.httpclient import HTTPClientError


@pytest.fixture
def other_store(tmp_path):
    return f"sqlite:///{tmp_path / 'configured.db'}"


@pytest.fixture
def jp_server_config(store, other_store, monkeypatch):
    # load() exports c.Nbops.tracking_uri into os.environ: let monkeypatch restore it after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])
    return {"ServerApp": {"jpserver_extensions": {"nbops": True}},
            "Nbops": {"tracking_uri": other_store, "telemetry": False, "default_runs": 2}}


async def test_configured_store_is_read_and_exported_to_kernels(jp_fetch, jp_serverapp, other_store):
    r = await jp_fetch("nbops", "api", "status", request_timeout=600)
    body = json.loads(r.body)
    assert other_store in body["store"] and body["extension"]["tracking_uri"] == other_store
    assert os.environ["MLFLOW_TRACKING_URI"] == other_store      # what the kernels the server starts inherit
    import nbops
    ids = []
    for i in range(3):
        with nbops.track("cfg", f"r{i}", tags={"mlflow.source.name": "/nb/a.ipynb"}) as t:
            t.log_metric("loss", float(i))
        ids.append(t.run_id)
    r = await jp_fetch("nbops", "api", "runs", params={"path": "/nb/a.ipynb"}, request_timeout=600)
    assert [x["run_id"] for x in json.loads(r.body)["runs"]] == ids[::-1][:2]   # default_runs = 2


async def test_telemetry_switched_off_is_a_404(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("nbops", "api", "telemetry")
    assert e.value.code == 404
    assert "c.Nbops.telemetry" in json.loads(e.value.response.body)["message"]
