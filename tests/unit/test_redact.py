"""The one redactor (nbops.tracking.redact): name rules, key shapes, learned values in every stored form."""
import html
import json
from urllib.parse import quote

import numpy as np
import pytest

import nbops
from nbops.errors import NbopsError
from nbops.tracking import redact

# Fake keys of every shape the issue names; none is a real credential.
SHAPES = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5" * 3 + "abcdef",
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "openai": "sk-proj-" + "Ab3dEfGh1jKlMnOpQrSt" + "T3BlbkFJ" + "Uv5xYz0123456789AbCd",
    "openai_style": "sk-live-4eC39HqLyjWDarjtT1zdp7dc",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplantedkeybody0123456789\n"
                   "-----END RSA PRIVATE KEY-----",
    "hugging_face": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "sendgrid": "SG." + "a" * 22 + "." + "b" * 43,
}


@pytest.fixture(autouse=True)
def _fresh():
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_key_shapes_are_masked_in_any_text(kind):
    key = SHAPES[kind]
    out = redact.text(f"before {key} after")
    assert key not in out and "before" in out and "after" in out
    if kind == "private_key":
        assert "plantedkeybody" not in out  # the whole block, not just its header line


def test_detect_secrets_plugins_are_the_rule_set():
    names = {type(p).__name__ for p in redact._plugins()}
    assert {"AWSKeyDetector", "GitHubTokenDetector", "SlackDetector", "JwtTokenDetector", "BasicAuthDetector",
            "PrivateKeyDetector", "OpenAIDetector", "StripeDetector"} <= names
    assert "IPPublicDetector" not in names


def test_url_userinfo_is_masked_in_params_tags_lists_and_dicts():
    url = "postgresql://bob:pl4nted-pw@db.example:5432/x"
    for v in (url, [url, "a"], {"db": url}, (url,), {"nested": {"u": url}}):
        out = redact.value(v)
        assert "pl4nted-pw" not in out and "bob" not in out and "db.example:5432/x" in out, out
    assert redact.mapping({"db_url": url, "lr": 0.1}) == {"db_url": "postgresql://****@db.example:5432/x",
                                                         "lr": "0.1"}


@pytest.mark.parametrize("name", ["api_token", "OPENAI_API_KEY", "db_password", "aws_secret_access_key", "key",
                                  "client_secret", "auth_header", "private_key", "apiKey", "X_TOKEN", "session_id",
                                  "MLFLOW_TRACKING_PASSWORD", "secretKey", "passwd", "DB_PWD"])
def test_secret_names(name):
    assert redact.is_secret_name(name)


@pytest.mark.parametrize("name", ["PWD", "OLDPWD", "lr", "monkey", "keyboard_layout", "keys_per_row", "author",
                                  "db_url", "tokenizer", "passenger_count", "SSH_AUTH_SOCK", "keyring"])
def test_word_boundaries_and_allow_list(name):
    assert not redact.is_secret_name(name)


def test_working_directory_is_never_masked(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("OLDPWD", str(tmp_path.parent))
    text = f"reading {tmp_path}/data.csv from {tmp_path.parent}"
    assert redact.text(text) == text


def test_configured_names(monkeypatch):
    monkeypatch.setenv("NBOPS_SECRET_NAMES", "vault_*, LICENCE")
    monkeypatch.setenv("NBOPS_NOT_SECRET_NAMES", "auth_mode")
    assert redact.is_secret_name("vault_path") and redact.is_secret_name("licence")
    assert not redact.is_secret_name("auth_mode") and redact.is_secret_name("auth_header")
    redact.learn_namespace({"vault_path": "secret/data/team-a"})
    assert "team-a" not in redact.text("read secret/data/team-a")


def test_values_of_secret_names_are_learned_and_masked_everywhere(monkeypatch):
    ns = {"api_token": "tok-planted-0001", "cfg": {"db": {"password": "dict-planted-0002"}, "lr": 0.1},
          "servers": [{"secret_key": "list-planted-0003"}], "lr": "not-a-secret-value"}
    redact.learn_namespace(ns)
    redact.learn_source("conn = connect(host='h', password='kw-planted-0004')\n"
                        "import os\nos.environ['X_TOKEN'] = 'env-planted-0005'\n"
                        "settings.api_key = 'attr-planted-0006'\nd = {'client_secret': 'lit-planted-0007'}\n")
    monkeypatch.setenv("PAYMENTS_API_KEY", "envvar-planted-0008")
    planted = ["tok-planted-0001", "dict-planted-0002", "list-planted-0003", "kw-planted-0004", "env-planted-0005",
               "attr-planted-0006", "lit-planted-0007", "envvar-planted-0008"]
    text = "Error: login failed for " + " ".join(planted) + " lr=not-a-secret-value"
    out = redact.text(text)
    assert not any(p in out for p in planted), out
    assert "not-a-secret-value" in out


def test_every_stored_form_of_a_value_is_masked():
    v = 'pa"ss<word>&1/2 x'
    redact.secret(v)
    for form in (v, json.dumps(v), html.escape(v), quote(v, safe=""), repr(v), json.dumps(html.escape(v))):
        assert "word" not in redact.text(f"[{form}]"), form


def test_nbops_secret_marks_a_value_and_returns_it():
    assert nbops.secret("my-vault-value") == "my-vault-value"
    assert "my-vault-value" not in redact.text("got my-vault-value back")
    with pytest.raises(NbopsError):
        nbops.secret("ab")
    with pytest.raises(NbopsError):
        nbops.secret(12345)


def test_short_values_are_not_learned():
    redact.learn_namespace({"token": "abc"})
    assert redact.text("abc def") == "abc def"


def test_assignments_in_text_mask_the_value_not_the_code():
    diff = '+DB_PASSWORD = "diff-planted-1"\n+token = api_token\n+n_tokens: 512\nexport GH_TOKEN=abcd1234efgh\n'
    out = redact.text(diff)
    assert "diff-planted-1" not in out and "abcd1234efgh" not in out
    assert "+token = api_token" in out and "n_tokens: 512" in out


def test_images_are_left_alone():
    # base64 image data must never be rewritten, even where a key pattern would match inside it
    data = "AKIAIOSFODNN7EXAMPLE" + "QUJD" * 10
    page = f'<img src="data:image/png;base64,{data}"> and AKIAIOSFODNN7EXAMPLE'
    out = redact.text(page)
    assert data in out and out.endswith("and ****")
    nb = json.dumps({"outputs": [{"data": {"image/png": data, "text/plain": "AKIAIOSFODNN7EXAMPLE"}}]})
    out = json.loads(redact.text(nb))["outputs"][0]["data"]
    assert out["image/png"] == data and out["text/plain"] == "****"


def test_numpy_scalars_are_stored_as_python_values():
    assert redact.value(np.float64(0.5)) == "0.5"
    assert redact.value(np.int64(3)) == "3"
    assert redact.value(np.bool_(True)) == "True"
    assert redact.value([np.float64(0.1), np.int32(2)]) == "[0.1, 2]"
    assert redact.value({"a": np.float32(0.25)}) == "{'a': 0.25}"
    assert redact.value(np.array(7)) == "7"


def test_profile_sample_values_of_secret_columns_are_masked():
    prof = json.dumps({"nbops": {"columns": [
        {"name": "password", "top": [["hunter22", 3]], "min": "aaa", "max": "zzz"},
        {"name": "city", "top": [["Paris", 2]]}]}})
    out = redact.profile_json(prof)
    assert "hunter22" not in out and "Paris" in out and "aaa" not in out


def test_logging_is_masked(caplog):
    import logging
    with caplog.at_level(logging.WARNING, logger="nbops"):
        logging.getLogger("nbops").warning("store at %s did not answer", "https://u:pl4nted@mlflow.example")
    assert "pl4nted" not in caplog.text and "mlflow.example" in caplog.text


def test_masking_never_changes_the_namespace():
    ns = {"api_token": "tok-planted-0001", "cfg": {"password": "dict-planted-0002"}}
    before = json.dumps(ns)
    redact.learn_namespace(ns)
    redact.text("tok-planted-0001")
    assert json.dumps(ns) == before


def test_values_only_the_kernel_saw_reach_the_runner_as_digests(monkeypatch):
    # nbops run: the kernel reports keyed digests of what it learned; the runner masks matching substrings
    env = redact.open_channel()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    redact.learn_namespace({"vault_token": "from-the-vault-7f3a9c"})
    raw = open(env[redact.ENV_CHANNEL], encoding="utf-8").read()
    assert "from-the-vault" not in raw and raw.count("\n") >= 1   # digests, never the value
    for k in env:
        monkeypatch.delenv(k)
    redact.forget_all()  # the runner is another process: it never saw the value
    assert redact.read_channel(env) >= 1
    assert not __import__("os").path.exists(env[redact.ENV_CHANNEL])  # the channel is gone after reading
    out = redact.text('{"text": "print -> from-the-vault-7f3a9c", "html": "&lt;from-the-vault-7f3a9c&gt;"}')
    assert "from-the-vault" not in out and out.count("****") == 2


def test_settings_and_paths_under_secret_names_are_not_learned(monkeypatch, tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text("{}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_PROFILE", "default")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    redact.learn_environ()
    text = f"region us-east-1, profile default, key file {creds}, key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert redact.text(text) == f"region us-east-1, profile default, key file {creds}, key ****"
    assert redact.is_secret_name("AWS_DEFAULT_REGION")  # still never a param or tag


def test_ordinary_texts_come_back_unchanged():
    from nbops.tracking import capture
    req = capture.environment()[1]  # google-auth==..., keyring==..., pyjwt==...: names, not secrets
    assert redact.text(req) == req
    code = "tokenizer = load('bert')\nn_tokens = 512\nkey_col = 'id'\nif password == expected:\n    pass\n"
    assert redact.text(code) == code


# -- issue 23: structure is never corrupted ---------------------------------------------------------------------
def test_a_contract_over_secret_named_columns_comes_back_unchanged():
    pd = pytest.importorskip("pandas")
    import yaml
    from nbops.validation.contract import infer
    users = pd.DataFrame({"user": ["ann", "bob", "cyd", "dan"], "api_key": ["k1aaaa", "k2bbbb", "k3cccc", None],
                          "token_count": [10, 20, 30, 40]})
    y = infer(users).to_yaml()
    assert redact.text(y, "contracts/users_v.yaml") == y and redact.text(y) == y
    assert yaml.safe_load(redact.text(y))["columns"]["api_key"]["nullable"] is True


@pytest.mark.parametrize("src", [
    "api_key:\n  nullable: true\n  dtype: str\ntoken_count: 5\n",
    "password:\n  - a: 1\n  - b: null\nsecret: true\ntoken: 12345678\n",
    "db:\n  password: null\n  pw: ~\n  auth: {kind: basic}\n",
])
def test_yaml_keys_bools_numbers_nulls_and_mappings_under_secret_keys_stay(src):
    import yaml
    assert yaml.safe_load(redact.text(src, ".yaml")) == yaml.safe_load(src)
    assert redact.text(src) == src  # as plain text too: a key line never masks the next line


def test_string_values_under_secret_keys_are_masked_and_the_yaml_still_parses():
    import yaml
    src = ("# config\nservice:\n  password: hunter\n  token: 'it''s-a-secret'\n  host: db.example\n"
           "  keys: [one-planted, two-planted]\napi_key: [k-planted-1, k-planted-2]\n")
    out = yaml.safe_load(redact.text(src, "conf.yml"))
    assert out == {"service": {"password": "****", "token": "****", "host": "db.example",
                               "keys": ["one-planted", "two-planted"]}, "api_key": ["****", "****"]}


def test_json_is_masked_value_by_value_and_keeps_its_structure():
    data = {"api_key": {"nullable": True, "n": 3}, "token": 'ab"c\\d-planted', "password": "hunter",
            "n_tokens": 5, "pw": None, "rows": [{"secret": "s3cr3t-planted", "ok": False}],
            "note": "connect with Server=h;Pwd=pl4nted-pw;", "image/png": "AKIAIOSFODNN7EXAMPLE"}
    for indent in (None, 1, 2):
        src = json.dumps(data, indent=indent)
        out = redact.text(src)
        back = json.loads(out)
        assert back["api_key"] == {"nullable": True, "n": 3} and back["n_tokens"] == 5 and back["pw"] is None
        assert back["token"] == back["password"] == back["rows"][0]["secret"] == "****"
        assert back["rows"][0]["ok"] is False and back["note"] == "connect with Server=h;Pwd=****;"
        assert back["image/png"] == "AKIAIOSFODNN7EXAMPLE"  # embedded images are left alone
        assert "planted" not in out and list(back) == list(data)


def test_a_notebook_file_stays_a_notebook(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('db_password = "q\\"uoted-planted"\nprint("ok")'),
                nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
                    "stream", text="dapi0123456789abcdef0123456789abcdef\n")])]
    nb.metadata["papermill"] = {"parameters": {"api_token": "param-planted-1", "n": 3}}
    p = tmp_path / "x.ipynb"
    nbformat.write(nb, str(p))
    redact.file(p)
    back = nbformat.read(str(p), as_version=4)
    nbformat.validate(back)
    raw = p.read_text()
    assert "planted" not in raw and "dapi0123" not in raw
    assert back.metadata["papermill"]["parameters"] == {"api_token": "****", "n": 3}
    assert back.cells[0].source.endswith('print("ok")')


# -- issue 23: kinds not covered before -------------------------------------------------------------------------
@pytest.mark.parametrize("conn,kept", [
    ("Driver={ODBC Driver 18};Server=tcp:h,1433;Uid=sa;Pwd=hunter22x;Encrypt=yes;", "Uid=sa;Pwd=****;Encrypt=yes;"),
    ("Server=h;Database=d;User Id=u;Password=Pl4nted!pw;", "User Id=u;Password=****;"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abcDEF123+/plantedkey==;"
     "EndpointSuffix=core.windows.net",
     "AccountName=acct;AccountKey=****;EndpointSuffix=core.windows.net"),
    ("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Zm9vYmFyplanted=",
     "SharedAccessKeyName=Root;SharedAccessKey=****"),
    ("jdbc:sqlserver://h:1433;databaseName=db;user=sa;password=P@ssw0rd-planted;", "user=sa;password=****;"),
    ("jdbc:postgresql://h/db?user=u&password=pgplanted1&ssl=true", "?user=u&password=****&ssl=true"),
    ("https://acct.blob.core.windows.net/c/f?sv=2022-11-02&se=2030&sig=abc%2Fplanted%3D", "se=2030&sig=****"),
    ("https://api.example/v1?TOKEN=tokplanted99&page=2", "?TOKEN=****&page=2"),
    ("PWD={p;w0rd-planted};Server=h", "PWD={****};Server=h"),
])
def test_credential_fields_of_connection_and_query_strings(conn, kept):
    out = redact.text(f"conn = '{conn}'")
    assert "planted" not in out and "hunter22x" not in out and kept in out, out


@pytest.mark.parametrize("kind,key", [
    ("databricks", "dapi" + "0123456789abcdef" * 2),
    ("databricks_suffix", "dapi" + "fedcba9876543210" * 2 + "-3"),
    ("gitlab", "glpat-" + "AbCdEfGhIj0123456789"),
    ("anthropic", "sk-ant-api03-" + "Ab1_" * 23 + "xAA"),
    ("atlassian", "ATATT3xFfGF0" + "Ab1-" * 45),
    ("heroku", "HRKU-AA" + "Ab1_" * 15),
    ("shopify", "shpat_" + "0123456789abcdef" * 2),
    ("digitalocean", "dop_v1_" + "0123456789abcdef" * 4),
    ("npm", "npm_" + "Ab1Cd2Ef3G" * 3 + "h4Ij5K"),
    ("doppler", "dp.pt." + "Ab1Cd2Ef3G" * 4 + "h4I"),
    ("postman", "PMAK-" + "0123456789abcdef01234567" + "-" + "0123456789abcdef" * 2 + "01"),
    ("vault", "hvs." + "CAESI" + "Ab1_" * 24),
    ("grafana_sa", "glsa_" + "Ab1Cd2Ef3G" * 3 + "h4_" + "0a1b2c3d"),
    ("grafana_cloud", "glc_" + "Ab1Cd2Ef3G" * 4 + "=="),
    ("terraform", "abcdef01234567.atlasv1." + "ab1-" * 17),
    ("sendgrid", "SG." + "a" * 22 + "." + "b" * 43),
    ("twilio", "SK" + "0123456789abcdef" * 2),
])
def test_vendor_token_shapes(kind, key):
    out = redact.text(f"export {kind.upper()}_VALUE_X={key} and print('{key}')")
    assert key not in out and out.count("****") == 2, out


@pytest.mark.parametrize("text", ["dapi is the Databricks prefix", "npm_config_cache=/tmp/npm", "pul-request",
                                  "see glsa_docs and hvs.example", "sha 0123456789abcdef0123456789abcdef0123"])
def test_prefixes_alone_are_not_tokens(text):
    assert redact.text(text) == text


@pytest.mark.parametrize("name", ["pw", "db_pw", "smtp_pass", "gh_tok", "DB_PASS", "dbPass"])
def test_short_secret_names(name):
    assert redact.is_secret_name(name)


@pytest.mark.parametrize("name", ["pass_rate", "n_passes", "passenger", "timeout_sec", "pw_len", "tok_count",
                                  "bypass", "keyword", "key_col", "power"])
def test_short_forms_only_as_the_last_word(name):
    assert not redact.is_secret_name(name)


def test_values_that_look_like_credentials_are_learned_whatever_their_name():
    redact.learn_params({"db_conn": "Server=h;Uid=sa;Pwd=pl4nted-conn-pw;", "n": 3,
                         "workspace": "https://x.azuredatabricks.net", "bearer_src": "ok"})
    redact.learn_namespace({"conn": "AccountName=a;AccountKey=pl4ntedAccountKey==;", "tok": "dapi" + "ab12" * 8})
    out = redact.text("login failed for pl4nted-conn-pw with key pl4ntedAccountKey== and " + "dapi" + "ab12" * 8)
    assert "pl4nted" not in out and "dapiab12" not in out
    assert redact.text("https://x.azuredatabricks.net") == "https://x.azuredatabricks.net"


def test_a_private_key_printed_over_several_notebook_lines_goes_whole():
    nb = {"cells": [{"outputs": [{"name": "stdout", "output_type": "stream",
                                  "text": ["key:\n", "-----BEGIN RSA PRIVATE KEY-----\n",
                                           "MIIEplantedKeyBody0123456789\n",
                                           "-----END RSA PRIVATE KEY-----\n", "done\n"]}]}]}
    out = redact.text(json.dumps(nb, indent=1))
    lines = json.loads(out)["cells"][0]["outputs"][0]["text"]
    assert "planted" not in out and lines[0] == "key:\n" and lines[-1] == "done\n"


def test_ordinary_query_strings_stay_and_plain_words_are_not_learned():
    url = "https://api.example/v1/rows?key=species&sort=asc&page=2"
    assert redact.text(url) == url
    redact.learn_namespace({"conn": "Server=h;Uid=sa;Pwd=hunter;", "q": url})
    assert redact.text("Server=h;Uid=sa;Pwd=hunter;") == "Server=h;Uid=sa;Pwd=****;"
    assert redact.text("hunter and species") == "hunter and species"


def test_a_contract_lists_no_values_of_a_secret_named_column():
    pd = pytest.importorskip("pandas")
    from nbops.validation.contract import infer
    df = pd.DataFrame({"password": ["hunter22x", "swordfish9"] * 50, "city": ["Paris", "Lyon"] * 50})
    y = infer(df).to_yaml()
    assert "hunter22x" not in y and "Paris" in y  # the closed set of an ordinary column is kept


def test_snapshot_frames_keep_columns_rows_and_missing_values():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user": ["a", "b", "c"], "api_key": ["k1-planted-x", None, "k3-planted-y"],
                       "token_count": [1, 2, 3], "password": pd.Categorical(["pw-planted-1", None, "pw-planted-1"])})
    before = df.copy()
    out, cols = redact.frame(df)
    assert cols == ["api_key", "password"] and list(out.columns) == list(df.columns) and len(out) == 3
    assert out["api_key"].isna().tolist() == out["password"].isna().tolist() == [False, True, False]
    assert set(out["api_key"].dropna()) == set(out["password"].dropna()) == {"****"}
    assert out["token_count"].tolist() == [1, 2, 3] and out["user"].tolist() == ["a", "b", "c"]
    assert df.equals(before)  # the user's frame is never changed
    assert "planted" not in redact.text("got k1-planted-x and pw-planted-1")  # the values are learned
    assert redact.frame(df[["user"]])[1] == []


def test_a_key_function_is_not_a_secret():
    # sorted/max/min's key= is a function: the strings inside it are column names, not credentials
    redact.learn_source('best = max(results, key=lambda v: (results[v]["contains"], results[v]["grounded"]))\n'
                        'client = make(api_key="s3cr3t-value-123")')
    assert redact.text("eval_contains and grounded") == "eval_contains and grounded"
    assert "s3cr3t-value-123" not in redact.text("the key s3cr3t-value-123")
