"""The service fixtures themselves (tests/services.py): PostgreSQL-backed mlflow server that survives a kill and
restart with its data, and a basic-auth server that refuses anonymous clients and accepts the admin."""
import pytest

from services import mlflow_pg_server, pg_cluster, postgres, start_mlflow_server  # noqa: F401

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_pg_server_keeps_runs_and_artifacts_across_a_kill(mlflow_pg_server):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(mlflow_pg_server.url)
    exp = c.create_experiment("svc")
    run = c.create_run(exp)
    c.log_metric(run.info.run_id, "m", 1.5)
    c.log_text(run.info.run_id, "hello", "notes/a.txt")
    mlflow_pg_server.kill()
    assert not mlflow_pg_server.running
    mlflow_pg_server.start()
    got = c.get_run(run.info.run_id)
    assert got.data.metrics == {"m": 1.5}
    assert [a.path for a in c.list_artifacts(run.info.run_id, "notes")] == ["notes/a.txt"]
    assert got.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, no shared disk


def test_basic_auth_server_exposes_admin_credentials(tmp_path):
    import requests

    srv = start_mlflow_server(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "art", auth=True, workers=1)
    try:
        url = srv.url + "/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=(srv.username, srv.password), timeout=10).status_code == 200
        assert srv.env()["MLFLOW_TRACKING_PASSWORD"] == srv.password
    finally:
        srv.close()
    assert not srv.running
