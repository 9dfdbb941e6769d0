"""The service fixtures themselves (tests/services.py): a basic-auth mlflow server refuses anonymous clients and
accepts the admin it exposes. (The PostgreSQL-backed server is exercised by test_parallel_runs.py, kill and
restart of a server by test_spool_server.py.)"""
import pytest

from services import start_mlflow_server

pytestmark = [pytest.mark.services, pytest.mark.slow]


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
