"""Issue 13, end to end: a scheduled notebook planted with fake keys of every kind, run with `nbops run` in a real
kernel online, offline (NBOPS_OFFLINE=1) and then `nbops sync`, and with a store that does not answer, leaves none
of them under `.nbops/` (store, artifacts, spool), in the `-o` output notebook, in the store's answers or on the
console; also against a real `mlflow server`. PLANTED is the catalogue of kinds (issue 13: 18, issue 23: +13)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops_testing import write_notebook
from services import mlflow_server  # noqa: F401

NBOPS = str(Path(sys.executable).parent / "nbops")
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlLXBsYW50ZWQtMDEyMzQ1"
KEY_BODY = "MIIEplantedPrivateKeyBody0123456789abcdef"
PLANTED = {
    "param": "param-planted-tok-81",                      # -p api_token ...
    "param_url": "urlpw-planted-82",                      # -p db_url postgresql://u:<pw>@h/db
    "tag_url": "tagpw-planted-83",                        # --tag conn=...://u:<pw>@...
    "variable": "var-planted-84",                         # client_secret = ...
    "dict_key": "dictkey-planted-85",                     # cfg = {"password": ...}
    "keyword": "kwarg-planted-86",                        # connect(password=...)
    "env_cell": "envcell-planted-87",                     # os.environ["SERVICE_X_TOKEN"] = ...
    "env": "envvar-planted-88",                           # PAYMENTS_API_KEY in the job's environment
    "list_url": "listpw-planted-89",                      # mirrors = ["https://m:<pw>@..."]
    "column": "colpw-planted-90",                         # a DataFrame column named password
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "Zq9" * 12,
    "slack": "xoxb-1234567890-0987654321-planted",
    "openai": "sk-proj-planted0123456789abcdefXYZ",
    "jwt": JWT,
    "private_key": KEY_BODY,
    "diff": "diffpw-planted-91",                          # an uncommitted credential in git/diff.patch
    "runtime": "runtime-planted-92",                      # computed in the kernel, printed by an untracked cell
    # issue 23
    "databricks": "dapi" + "0123456789abcdef" * 2 + "-2",  # a plain variable (a param) and printed
    "azure_conn": "plantedAzureAccountKey0123==",         # AccountKey=... of an Azure connection string
    "param_conn": "connpw-planted-95",                    # -p db_conn "Server=...;Uid=...;Pwd=...;"
    "snapshot_column": "snapcol-planted-96",              # an api_key column of a frame stored with --snapshot
    "short_name": "shortpw-planted-97",                   # pw = ... (a short secret name), printed
    "computed_secret": "computed-planted-98",             # db_password computed at run time, printed
    "url_query": "querytok-planted-99",                   # https://...?access_token=...&...
    "gitlab": "glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn",
    "anthropic": "sk-ant-api03-" + "Zx9_" * 23 + "qAA",
    "shopify": "shpat_" + "0a1b2c3d4e5f6789" * 2,
    "npm": "npm_" + "Qw3Er4Ty5U" * 3 + "i6Op7A",
    "vault": "hvs." + "CAESIPl4nted" + "Xy7_" * 22,
    "grafana": "glsa_" + "Pl4ntedGrafanaServiceAcct0123456" + "_0a1b2c3d",
}
TOKENS = [PLANTED[k] for k in ("databricks", "gitlab", "anthropic", "shopify", "npm", "vault", "grafana")]
CELLS = [
    "%load_ext nbops",
    "import os\nos.environ['SERVICE_X_TOKEN'] = 'envcell-planted-87'\n"
    "client_secret = 'var-planted-84'\ncfg = {'db': {'password': 'dictkey-planted-85'}, 'lr': 0.1}\n"
    f"pw = 'shortpw-planted-97'\ndb_password = bytes.fromhex('{PLANTED['computed_secret'].encode().hex()}').decode()\n",
    "%%track -e secrets -n train --tag conn=postgresql://tag_user:tagpw-planted-83@db/x --data users --snapshot\n"
    "import pandas as pd\n"
    f"workspace = '{PLANTED['databricks']}'\n"
    "storage = ('DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=plantedAzureAccountKey0123==;'\n"
    "           'EndpointSuffix=core.windows.net')\n"
    "endpoint = 'https://api.example/v1/items?access_token=querytok-planted-99&page=2'\n"
    f"handles = {TOKENS[1:]!r}\n"
    "print('conn', db_conn, storage, endpoint, workspace, handles, pw, db_password)\n"
    "def connect(host, password):\n    return host\n"
    "conn = connect('db', password='kwarg-planted-86')\n"
    "mirrors = ['https://m:listpw-planted-89@mirror.example/x']\n"
    "users = pd.DataFrame({'password': ['colpw-planted-90'] * 4, 'n': range(4),\n"
    "                      'api_key': ['snapcol-planted-96', None, 'snapcol-planted-96', 'k'],\n"
    "                      'token_count': range(4)})\n"
    f"keys = ['AKIAIOSFODNN7EXAMPLE', '{PLANTED['github']}', '{PLANTED['slack']}', '{PLANTED['openai']}', '{JWT}']\n"
    f"pem = '-----BEGIN RSA PRIVATE KEY-----\\n{KEY_BODY}\\n-----END RSA PRIVATE KEY-----'\n"
    "print('token', api_token, 'url', db_url, 'secret', client_secret, cfg, os.environ['SERVICE_X_TOKEN'],\n"
    "      os.environ['PAYMENTS_API_KEY'], keys, pem)\n"
    "accuracy = 0.75\n",
    "check = 'var-planted-84' == client_secret  # a later cell's source holds the value\nprint(check)",
    "import codecs\nsession_cookie = codecs.decode('ehagvzr-cynagrq-92', 'rot13')\nprint(session_cookie)",
    "%%track -e secrets -n fails\nraise RuntimeError(f'login refused for {api_token} / {client_secret} via {db_conn}')",
]


def _project(root: Path) -> Path:
    proj = root / "proj"
    (proj / "nb").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'p'\n")

    def git(*a):
        subprocess.run(["git", "-C", str(proj), *a], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (proj / "settings.py").write_text("DEBUG = True\n")
    git("add", "settings.py", "pyproject.toml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c1")
    (proj / "settings.py").write_text('DEBUG = True\nDB_PASSWORD = "diffpw-planted-91"\n')  # uncommitted
    write_notebook(proj / "nb" / "job.ipynb", CELLS, parameters={"api_token": "", "db_url": "", "db_conn": ""})
    return proj


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_TRACKING_", "MLFLOW_EXP"))}
    env["PAYMENTS_API_KEY"] = PLANTED["env"]
    env.update(extra or {})
    return env


def _run(proj: Path, env: dict, out: str) -> subprocess.CompletedProcess:
    return subprocess.run([NBOPS, "run", "nb/job.ipynb", "-o", f"nb/{out}", "-p", "api_token", PLANTED["param"],
                           "-p", "db_url", f"postgresql://u:{PLANTED['param_url']}@db.example/app",
                           "-p", "db_conn", f"Server=db.example;Uid=sa;Pwd={PLANTED['param_conn']};"],
                          cwd=proj, env=env, capture_output=True, text=True, timeout=900)


def _leaks(root: Path, *texts: str) -> list[str]:
    found = [f"{k} on the console" for k, v in PLANTED.items() for t in texts if v in t]
    for p in Path(root).rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{k} in {p.relative_to(root)}" for k, v in PLANTED.items() if v.encode() in data]
    return found


def _check_runs(client):
    exp = client.get_experiment_by_name("secrets")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["train"].info.status == "FINISHED" and runs["train"].data.metrics["accuracy"] == 0.75
    assert runs["train"].data.tags["conn"] == "postgresql://****@db/x"
    assert runs["fails"].info.status == "FAILED"
    assert runs["fails"].data.tags["nbops.error"] == ("RuntimeError: login refused for **** / **** via "
                                                      "Server=db.example;Uid=sa;Pwd=****;")
    parent = client.get_run(runs["train"].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED" and parent.data.params["db_url"] == "postgresql://****@db.example/app"
    assert "api_token" not in parent.data.params
    for params in (parent.data.params, runs["train"].data.params):  # the connection string keeps its fields
        assert params["db_conn"] == "Server=db.example;Uid=sa;Pwd=****;"
    assert runs["train"].data.params["workspace"] == "****"
    snap = client.download_artifacts(runs["train"].info.run_id, "data/users.parquet")
    import pandas as pd
    users = pd.read_parquet(snap)  # the column is kept, with its rows and missing values; its values are masked
    assert list(users.columns) == ["password", "n", "api_key", "token_count"] and len(users) == 4
    assert users["api_key"].isna().tolist() == [False, True, False, False]
    assert set(users["api_key"].dropna()) == {"****"} and users["token_count"].tolist() == [0, 1, 2, 3]
    for r in (*runs.values(), parent):  # everything the store answers
        assert not [k for k, v in PLANTED.items() if v in repr(r.to_dictionary())]
    return parent


def test_planted_keys_reach_nothing_online_and_offline_then_synced(tmp_path):
    from mlflow.tracking import MlflowClient

    proj = _project(tmp_path)
    online = _run(proj, _env(), "out1.ipynb")
    assert online.returncode == 1, online.stderr[-2000:]  # the last cell fails, as planted
    assert "RuntimeError" in online.stderr
    client = MlflowClient(f"sqlite:///{proj / '.nbops' / 'mlflow.db'}")
    parent = _check_runs(client)
    arts = [a.path for a in client.list_artifacts(parent.info.run_id, "notebook")]
    assert any(a.endswith(".html") for a in arts) and any(a.endswith(".ipynb") for a in arts)
    assert not _leaks(proj / ".nbops", online.stdout, online.stderr)
    out = (proj / "nb" / "out1.ipynb").read_text()  # the -o output notebook is masked too
    assert not [k for k, v in PLANTED.items() if v in out] and "Pwd=****" in out

    # offline: everything into the spool, then synced into a second store
    env = _env({"NBOPS_OFFLINE": "1", "NBOPS_HOME": str(tmp_path / "off" / ".nbops")})
    offline = _run(proj, env, "out2.ipynb")
    assert offline.returncode == 1 and "spool" in (offline.stdout + offline.stderr)
    assert list((tmp_path / "off" / ".nbops" / "spool").glob("*/journal.jsonl"))
    assert not _leaks(tmp_path / "off", offline.stdout, offline.stderr)
    assert not [k for k, v in PLANTED.items() if v in (proj / "nb" / "out2.ipynb").read_text()]
    env.pop("NBOPS_OFFLINE")
    sync = subprocess.run([NBOPS, "sync"], cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    _check_runs(MlflowClient(f"sqlite:///{tmp_path / 'off' / '.nbops' / 'mlflow.db'}"))
    assert not _leaks(tmp_path / "off", sync.stdout, sync.stderr)

    # a store that does not answer: everything lands in the spool, masked the same way
    dead = _env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "3", "NBOPS_SPOOL_DIR": str(tmp_path / "dead-spool")})
    res = _run(proj, dead, "out3.ipynb")
    assert res.returncode == 1 and len(list((tmp_path / "dead-spool").glob("*/journal.jsonl"))) >= 3
    assert not _leaks(tmp_path / "dead-spool", res.stdout, res.stderr)
    assert not [k for k, v in PLANTED.items() if v in (proj / "nb" / "out3.ipynb").read_text()]


@pytest.mark.services
def test_planted_keys_reach_nothing_on_an_mlflow_server(tmp_path, mlflow_server):  # noqa: F811
    from mlflow.tracking import MlflowClient

    proj = _project(tmp_path)
    res = _run(proj, _env(mlflow_server.env()), "out.ipynb")
    assert res.returncode == 1, res.stderr[-2000:]
    _check_runs(MlflowClient(mlflow_server.url))
    # the server's own store and artifact folder, and anything nbops left under the project's .nbops
    found = _leaks(proj / ".nbops", res.stdout, res.stderr) if (proj / ".nbops").exists() else []
    found += [f for f in _leaks(tmp_path) if f.split(" in ", 1)[-1].startswith(("server", ".nbops"))]
    assert not found
