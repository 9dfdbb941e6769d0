"""Promotion against a real ``mlflow server`` on PostgreSQL with the basic-auth app: permissions are enforced by
the server (a READ user is refused and nothing changes; a MANAGE user promotes), the champion loads through the
server's artifact proxy, and a server that dies between registering and moving the alias leaves the registry
consistent."""
from __future__ import annotations

import pytest

import nbops
from nbops.errors import PromotionError
from nbops.registry import history

from services import pg_cluster, postgres, start_mlflow_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.services, pytest.mark.slow]


def train(name, max_iter=5000, cols=13):
    """A tracked run that fits and logs a wine classifier, through the server."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    with nbops.track("promo", name) as t:
        m = LogisticRegression(max_iter=max_iter).fit(X[:, :cols], y)
        t.log_metric("accuracy", float(m.score(X[:, :cols], y)))
        t.log_model(m)
    assert not t.run.spooled, t.run.spool_reason
    return t.run_id


@pytest.fixture
def server(tmp_path, postgres, monkeypatch):  # noqa: F811
    srv = start_mlflow_server(postgres, tmp_path / "server-artifacts", auth=True)
    for k, v in srv.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NBOPS_SPOOL_DIR", str(tmp_path / "spool"))
    for var in ("NBOPS_OFFLINE", "NBOPS_PARENT_RUN_ID", "NBOPS_NOTEBOOK_PATH", "NBOPS_EXPERIMENT",
                "MLFLOW_EXPERIMENT_NAME", "NBOPS_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")  # see tests/functional/test_registry_promote
    import mlflow
    mlflow.set_tracking_uri(srv.url)
    yield srv
    srv.close()


def as_user(monkeypatch, user, password):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def state(srv, monkeypatch):
    """(versions, aliases, tags of every version), read as the admin."""
    from mlflow.tracking import MlflowClient

    as_user(monkeypatch, srv.username, srv.password)
    c = MlflowClient(srv.url)
    mvs = sorted(c.search_model_versions("name='wine'"), key=lambda m: int(m.version))
    return ([m.version for m in mvs], {k: str(v) for k, v in c.get_registered_model("wine").aliases.items()},
            {m.version: dict(c.get_model_version("wine", m.version).tags) for m in mvs})


def test_read_user_is_refused_and_manage_user_promotes(server, monkeypatch):
    import mlflow
    from mlflow.server import get_app_client
    from sklearn.datasets import load_wine

    weak, strong = train("weak", 20, 2), train("strong")                 # as the admin
    first = nbops.promote("wine", weak, reason="baseline")
    assert first.status == "promoted" and first.who == server.username
    auth = get_app_client("basic-auth", tracking_uri=server.url)
    auth.create_user("rita", "rita-password-1")
    auth.create_user("max", "max-password-12")
    auth.grant_user_permission("rita", "registered_model", "wine", "READ")
    auth.grant_user_permission("max", "registered_model", "wine", "MANAGE")
    before = state(server, monkeypatch)

    as_user(monkeypatch, "rita", "rita-password-1")
    with pytest.raises(PromotionError) as e:
        nbops.promote("wine", strong, require=["accuracy>=0.9"], reason="rita tries")
    assert "PERMISSION_DENIED" in str(e.value) or "ermission" in str(e.value)
    assert "Nothing was changed" in str(e.value) and "MANAGE" in str(e.value)
    with pytest.raises(PromotionError):
        nbops.rollback("wine")
    assert state(server, monkeypatch) == before                           # versions, aliases and tags as before

    as_user(monkeypatch, "max", "max-password-12")
    res = nbops.promote("wine", strong, require=["accuracy>=0.9"], must_beat="champion", reason="max promotes")
    assert res.status == "promoted" and res.version == "2"
    versions, aliases, tags = state(server, monkeypatch)
    assert versions == ["1", "2"] and aliases == {"champion": "2", "previous-champion": "1"}
    t = tags["2"]
    assert t["nbops.promote.who"] == "max" and t["nbops.promote.who_source"] == "mlflow"
    assert t["nbops.promote.reason"] == "max promotes" and t["nbops.promote.replaced"] == "1"
    assert t["nbops.promote.status"] == "promoted"
    X, _ = load_wine(return_X_y=True)
    assert len(mlflow.pyfunc.load_model("models:/wine@champion").predict(X[:4])) == 4
    as_user(monkeypatch, "max", "max-password-12")
    nbops.rollback("wine", reason="max rolls back")
    assert state(server, monkeypatch)[1] == {"champion": "1"}
    assert [r["who"] for r in history("wine").rows()] == [server.username, "max", "max"]


def test_server_gone_between_register_and_alias_move(server, monkeypatch):
    """The server is killed (SIGKILL) right after the version is registered with its audit, when the alias is
    about to move: a clear error, the registry keeps the new version with no alias and a status tag saying why,
    and promoting again once the server is back finishes the job with the same version."""
    from mlflow.tracking import MlflowClient

    a, b = train("a"), train("b", 20, 2)
    nbops.promote("wine", a)
    real = MlflowClient.set_registered_model_alias

    def die_first(self, *args, **kwargs):
        server.kill()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", die_first)
    with pytest.raises(PromotionError) as e:
        nbops.promote("wine", b, reason="during an outage")
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", real)
    msg = str(e.value)
    assert "Version 2 was registered" in msg and "no 'champion' alias" in msg and "again" in msg
    server.start()
    versions, aliases, tags = state(server, monkeypatch)
    assert versions == ["1", "2"] and aliases == {"champion": "1"}       # never the alias without the audit
    assert tags["2"]["nbops.promote.status"].startswith("pending: moving 'champion'")
    assert tags["2"]["nbops.promote.reason"] == "during an outage"
    assert [r["outcome"] for r in history("wine").rows()] == ["done", "pending"]
    res = nbops.promote("wine", b, reason="after the outage")
    assert res.version == "2" and not res.created
    versions, aliases, tags = state(server, monkeypatch)
    assert versions == ["1", "2"] and aliases == {"champion": "2", "previous-champion": "1"}
    assert tags["2"]["nbops.promote.status"] == "promoted"
