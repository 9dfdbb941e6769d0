"""The one redactor: every text and value nbops writes passes through :func:`text` (or :func:`value`,
:func:`mapping`, :func:`files`) on its way to the store, the spool or the console.

It masks, with ``****``:

1. **Shapes of well-known keys**, found by the regex plugins of `detect-secrets` (Yelp's maintained rule set:
   AWS, GitHub, GitLab, Slack, Stripe, OpenAI, SendGrid, Twilio, Discord, npm, PyPI, Azure storage, Artifactory,
   Mailchimp, Square, Telegram, JWTs, private-key headers, basic-auth URLs), plus a few
   shapes it lacks (whole private-key blocks, OpenAI-style ``sk-...`` keys of any form, Hugging Face ``hf_``,
   Google ``AIza...``, GitHub ``github_pat_``, the ``user:password@`` of any URL), vendor tokens with a fixed
   prefix (:data:`TOKEN_SHAPES`: Databricks ``dapi``, GitLab, Atlassian, Heroku, Shopify, DigitalOcean, npm,
   Doppler, Postman, Vault, Grafana, ...) and the credential fields of connection and query strings
   (``Pwd=``, ``AccountKey=``, ``SharedAccessKey=``, ``&sig=``, ...: the value only).
2. **The concrete secret values this process has seen**: every string value of a secret-named variable,
   dict key, keyword argument (``password=...``), parameter (``-p api_token ...`` or papermill's injected
   cell), environment variable (including ``os.environ["X_TOKEN"] = ...`` set inside a cell), and every value
   given to :func:`secret`, and the credentials found inside any string value (a connection string under an
   ordinary name). Each is masked wherever it reappears, in the forms nbops stores it in: as is, JSON-escaped
   (notebooks), HTML-escaped (the notebook's HTML), URL-quoted and ``repr``-escaped.
3. ``NAME = value`` / ``NAME: value`` on one line when NAME is a secret name.

Structure is never corrupted: JSON text (a notebook) and YAML (``fmt="yaml"``, a ``.yaml`` artifact) are parsed
and masked value by value -- keys, numbers, bools, nulls and nested mappings stay -- so the result parses to the
same structure; :func:`frame` masks the text values of secret-named columns of a frame nbops stores.

A name is secret when one of its words (split at ``_``, ``-``, ``.``, digits and camelCase) is a credential
word (token, secret, password, passwd, pwd, passphrase, apikey, credential(s), auth, cookie, dsn, signature,
jwt, bearer, ...), when its last word is ``key``, ``pw``, ``pass`` or ``tok`` (``api_key``, ``db_pw``,
``smtp_pass``; not ``pass_rate``), starts with ``aws_``, or
names a session id / connection string -- unless it is on the allow-list (``PWD``, ``OLDPWD``,
``SSH_AUTH_SOCK``, ...: the working directory is never masked). ``NBOPS_SECRET_NAMES`` adds names (comma
separated, ``*`` globs allowed) and ``NBOPS_NOT_SECRET_NAMES`` adds allow-listed ones.

Masking never changes what the user's code computes: nbops only reads the namespace and masks its own copies.
Values shorter than 6 characters are not learned (masking ``"abc"`` everywhere would garble every text);
:func:`secret` takes values of 4 characters or more. Images embedded in notebooks and HTML are left alone.
"""
from __future__ import annotations

import ast
import fnmatch
import html
import json
import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("nbops")

MASK = "****"
MIN_LEARNED = 6      # shortest value learned from a name rule
MIN_EXPLICIT = 4     # shortest value nbops.secret() accepts
ENV_NAMES = "NBOPS_SECRET_NAMES"
ENV_NOT_NAMES = "NBOPS_NOT_SECRET_NAMES"

SECRET_WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase", "apikey",
    "apikeys", "credential", "credentials", "creds", "auth", "authorization", "cookie", "cookies", "dsn",
    "signature", "jwt", "bearer", "privatekey", "secretkey", "accesskey", "sessionid", "connstr", "pat", "otp",
    "hmac", "salt",
})
# Short forms that are a credential only as the name's last word: ``key``, ``api_key``, ``pw``, ``db_pw``,
# ``smtp_pass``, ``gh_tok`` -- but not ``pass_rate``, ``pw_len``, ``key_col`` or ``token_count``-style leading
# uses, nor ``sec`` (seconds: ``timeout_sec``).
SECRET_LAST = frozenset({"key", "pw", "pass", "tok"})
SECRET_PAIRS = frozenset({("session", "id"), ("conn", "str"), ("connection", "string"), ("client", "secret"),
                          ("private", "key"), ("access", "key"), ("secret", "key")})
ALLOWED_NAMES = frozenset({
    "pwd", "oldpwd", "ssh_auth_sock", "xauthority", "tokenizers_parallelism", "gpg_agent_info", "pin_memory",
    "nbops_secret_names", "nbops_not_secret_names",
})

# Secret names (never params or tags) whose values are settings, not secrets: not learned as values, so "us-east-1"
# or "default" is not masked in every text.
PLAIN_VALUE_NAMES = frozenset({
    "aws_region", "aws_default_region", "aws_profile", "aws_default_profile", "aws_sdk_load_config",
    "aws_config_file", "aws_shared_credentials_file", "aws_endpoint_url", "aws_ca_bundle", "aws_page",
    "aws_default_output", "aws_retry_mode", "aws_max_attempts",
})

_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\b|[_\W\d])|[A-Z]?[a-z]+|[A-Z]+")


def _words(name: str) -> list[str]:
    return [w.lower() for chunk in re.split(r"[_\W\d]+", name) if chunk for w in _PARTS.findall(chunk)]


def is_secret_name(name: Any) -> bool:
    """True when ``name`` (a variable, key, parameter, column or environment variable) names a credential."""
    if not isinstance(name, str) or not name:
        return False
    return _is_secret_name(name, os.environ.get(ENV_NAMES, ""), os.environ.get(ENV_NOT_NAMES, ""))


@lru_cache(maxsize=4096)
def _is_secret_name(name: str, extra: str, allowed: str) -> bool:
    low = name.lower()
    listed = lambda spec: any(fnmatch.fnmatchcase(low, p.strip().lower()) for p in spec.split(",") if p.strip())  # noqa: E731
    if low in ALLOWED_NAMES or listed(allowed):
        return False
    if listed(extra):
        return True
    words = _words(name)
    if not words:
        return False
    if any(w in SECRET_WORDS for w in words) or words[-1] in SECRET_LAST or words[0] == "aws":
        return True
    return any(p in SECRET_PAIRS for p in zip(words, words[1:]))


# -- the values seen in this process ----------------------------------------------------------------------------
_LOCK = threading.Lock()
_VALUES: set[str] = set()
_FORMS: list[str] | None = None   # every stored form of every value, longest first (rebuilt on change)


def _forms(v: str) -> set[str]:
    from urllib.parse import quote, quote_plus

    out = {v, json.dumps(v)[1:-1], html.escape(v), html.escape(v, quote=False), quote(v, safe=""),
           quote_plus(v), repr(v)[1:-1], json.dumps(html.escape(v))[1:-1]}
    return {f for f in out if len(f) >= MIN_EXPLICIT}


def remember(v: Any, minimum: int = MIN_LEARNED) -> None:
    """Learn a secret value (strings of ``minimum`` characters or more; bytes are decoded)."""
    global _FORMS
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            return
    if not isinstance(v, str):
        return
    v = v.strip()
    if len(v) < minimum or v == MASK or v in _VALUES:
        return
    with _LOCK:
        _VALUES.add(v)
        _FORMS = None
    _report(v)


def secret(value: Any) -> Any:
    """Mark ``value`` as secret and return it unchanged: ``token = nbops.secret(vault.read("api"))``. From then
    on nbops masks it in everything it writes (source, output, parameters, tags, notebooks, the spool)."""
    from ..errors import NbopsError

    if isinstance(value, (list, tuple, set)):
        for v in value:
            secret(v)
        return value
    if not isinstance(value, (str, bytes)) or len(value.strip()) < MIN_EXPLICIT:
        raise NbopsError(f"nbops.secret() takes a string of {MIN_EXPLICIT} characters or more (got "
                         f"{type(value).__name__}); mark the secret value itself, e.g. nbops.secret(token).")
    remember(value, MIN_EXPLICIT)
    return value


# -- kernel -> `nbops run`: what the kernel learned, as keyed digests ------------------------------------------
# `nbops run` stores the executed notebook from its own process, which never sees values a kernel computed (a
# token read from a vault, then printed). It gives the kernel a channel file in a private folder and a random key
# (never stored); the kernel appends, per learned value and stored form, its length, first characters and a keyed
# BLAKE2 digest -- never the value -- and the runner masks every substring with a matching digest.
ENV_CHANNEL, ENV_CHANNEL_KEY = "NBOPS_REDACT_CHANNEL", "NBOPS_REDACT_KEY"
_DIGESTS: dict[tuple[int, str], set[str]] = {}
_DIGEST_KEY: bytes | None = None


def _prefix_len(n: int) -> int:
    return max(1, min(3, n // 3))


def _digest(key: bytes, form: str) -> str:
    import hashlib

    return hashlib.blake2b(form.encode("utf-8"), key=key[:64], digest_size=16).hexdigest()


def _report(v: str) -> None:
    path, key = os.environ.get(ENV_CHANNEL), os.environ.get(ENV_CHANNEL_KEY)
    if not path or not key:
        return
    lines = "".join(json.dumps({"n": len(f), "p": f[:_prefix_len(len(f))], "h": _digest(key.encode(), f)}) + "\n"
                    for f in _forms(v))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        log.debug("nbops: cannot report a secret digest to %s: %s", path, exc)


def open_channel() -> dict[str, str]:
    """For ``nbops run``: a fresh channel (private folder, random key); returns the kernel's environment."""
    import secrets
    import tempfile

    folder = tempfile.mkdtemp(prefix="nbops-redact-")  # mode 0700
    return {ENV_CHANNEL: os.path.join(folder, "digests.jsonl"), ENV_CHANNEL_KEY: secrets.token_hex(32)}


def read_channel(env: dict[str, str]) -> int:
    """For ``nbops run``, after the kernel stopped: take in its digests, delete the channel; returns how many."""
    global _DIGEST_KEY
    import shutil

    path = env.get(ENV_CHANNEL)
    if not path:
        return 0
    n = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                    _DIGESTS.setdefault((int(d["n"]), str(d["p"])), set()).add(str(d["h"]))
                    n += 1
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        pass
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    _DIGEST_KEY = env[ENV_CHANNEL_KEY].encode()
    return n


def _mask_digests(s: str) -> str:
    if not _DIGESTS or _DIGEST_KEY is None:
        return s
    for (n, prefix), hashes in sorted(_DIGESTS.items(), key=lambda kv: -kv[0][0]):
        out, last, i = [], 0, s.find(prefix)
        while i != -1:
            if _digest(_DIGEST_KEY, s[i:i + n]) in hashes:
                out += [s[last:i], MASK]
                last = i + n
                i = s.find(prefix, last)
            else:
                i = s.find(prefix, i + 1)
        if out:
            s = "".join(out) + s[last:]
    return s


def watch_kernel(shell) -> None:
    """Under ``nbops run``: learn from every cell the kernel runs (its source and the namespace after it), so the
    runner can mask values that only the kernel saw. Undone by :func:`unwatch_kernel`."""
    if not os.environ.get(ENV_CHANNEL) or getattr(shell, "_nbops_redact_watch", None):
        return

    def post_run_cell(result):
        try:
            learn_source(getattr(result.info, "raw_cell", "") or "", shell.user_ns)
            learn_namespace(shell.user_ns)
        except Exception as exc:  # noqa: BLE001 - never in the user's way
            log.debug("nbops: could not learn secrets from the cell: %s", exc)

    shell.events.register("post_run_cell", post_run_cell)
    shell._nbops_redact_watch = post_run_cell


def unwatch_kernel(shell) -> None:
    cb = getattr(shell, "_nbops_redact_watch", None)
    if cb is not None:
        try:
            shell.events.unregister("post_run_cell", cb)
        except ValueError:
            pass
        shell._nbops_redact_watch = None


def known_values() -> int:
    """How many secret values are known (for status displays and tests; never the values)."""
    return len(_VALUES)


def forget_all() -> None:
    """Forget the learned values (tests)."""
    global _FORMS, _DIGEST_KEY
    with _LOCK:
        _VALUES.clear()
        _FORMS = None
        _DIGESTS.clear()
        _DIGEST_KEY = None


def _plain_value(name: str, v: Any) -> bool:
    """A setting under a secret-looking name (a region, a profile) or a path to a file that exists: the secret is
    the file's content, not its name; masking the path would garble every text that names it."""
    if name.lower() in PLAIN_VALUE_NAMES:
        return True
    return isinstance(v, str) and v.startswith(("/", "~")) and "\n" not in v and len(v) < 4096 \
        and os.path.exists(os.path.expanduser(v))


def learn_object(obj: Any, name: str | None = None, depth: int = 0) -> None:
    """Learn from one named value: a string under a secret name; strings under secret keys of dicts (nested);
    a string or bytes of a secret-named variable. Lists and tuples are searched for dicts."""
    if depth > 4:
        return
    if isinstance(obj, str):
        learn_embedded(obj)
    if name is not None and is_secret_name(name) and not _plain_value(name, obj):
        if isinstance(obj, (str, bytes)):
            remember(obj)
        elif isinstance(obj, (list, tuple)) and len(obj) <= 50:
            for x in obj:
                if isinstance(x, (str, bytes)):
                    remember(x)
    if isinstance(obj, dict) and len(obj) <= 500:
        for k, v in list(obj.items()):
            learn_object(v, str(k), depth + 1)
    elif isinstance(obj, (list, tuple)) and 0 < len(obj) <= 200 and isinstance(obj[0], (dict, list, tuple)):
        for x in obj:
            learn_object(x, None, depth + 1)


def learn_embedded(s: str) -> None:
    """Learn the secrets inside a string whatever its name: the credential fields of a connection string
    (``Server=h;Uid=u;Pwd=...``) and well-known token shapes, so they are masked wherever they reappear alone."""
    if not isinstance(s, str) or len(s) > 65536 or len(s) < MIN_LEARNED:
        return
    if "=" in s and (";" in s or "&" in s or "?" in s):
        for _, _, v in _conn_spans(s):
            if not _wordlike(v):  # a letters-only value stays masked in its string, but is not learned
                remember(v)
    if any(p in s for p in TOKEN_PREFIXES):
        for m in TOKEN_SHAPES.finditer(s):
            remember(m.group(0))


def learn_namespace(ns: dict | None) -> None:
    """Learn from a kernel namespace: secret-named variables and secret keys inside dicts (read only)."""
    for k, v in list((ns or {}).items()):
        if k.startswith("_") or callable(v) and not isinstance(v, dict):
            continue
        if isinstance(v, (str, bytes, dict, list, tuple)):
            learn_object(v, k)


def learn_params(params: dict | None) -> None:
    for k, v in (params or {}).items():
        learn_object(v, str(k))


_ENV_SEEN = [-1]


def learn_environ() -> None:
    """Learn the values of secret-named environment variables (also ones a cell set a moment ago)."""
    extra, allowed = os.environ.get(ENV_NAMES, ""), os.environ.get(ENV_NOT_NAMES, "")
    for k, v in list(os.environ.items()):
        if _is_secret_name(k, extra, allowed) and not _plain_value(k, v):
            remember(v)
    _ENV_SEEN[0] = len(os.environ)


def _key_name(node: ast.AST) -> str | None:
    """The secret-bearing name of an assignment target: ``x``, ``obj.x``, ``d["x"]``, ``os.environ["X"]``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return None


def _const_strings(node: ast.AST, ns: dict | None) -> Iterable[str]:
    """String constants (and f-string parts) in ``node``, plus the value of a plain name it refers to."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, (str, bytes)):
            yield sub.value
        elif isinstance(sub, ast.Name) and ns is not None and isinstance(ns.get(sub.id), str) and sub is node:
            yield ns[sub.id]


def learn_source(source: str | None, ns: dict | None = None) -> None:
    """Learn from code: strings assigned to secret names (variables, attributes, dict keys, ``os.environ``),
    passed as secret-named keywords (``password=...``), paired with secret keys in dict literals, or given to
    ``os.environ.setdefault`` / ``os.putenv`` / ``nbops.secret``. Code that does not parse is scanned line by
    line (magics and ``!`` lines are skipped)."""
    if not source:
        return
    try:
        tree = ast.parse(source)
    except SyntaxError:
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            flat = []
            for t in targets:
                flat += list(t.elts) if isinstance(t, (ast.Tuple, ast.List)) else [t]
            if any(is_secret_name(_key_name(t)) for t in flat):
                for s in _const_strings(node.value, ns):
                    remember(s)
        elif isinstance(node, ast.keyword) and node.arg and is_secret_name(node.arg) and \
                not isinstance(node.value, ast.Lambda):  # sorted(..., key=lambda r: r["name"]): a function
            for s in _const_strings(node.value, ns):
                remember(s)
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and is_secret_name(k.value) and v is not None:
                    for s in _const_strings(v, ns):
                        remember(s)
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            fname = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if fname in ("setdefault", "putenv", "__setitem__") and len(node.args) >= 2 and isinstance(
                    node.args[0], ast.Constant) and is_secret_name(node.args[0].value):
                for s in _const_strings(node.args[1], ns):
                    remember(s)
            elif fname == "secret":
                for s in _const_strings(node.args[0], ns):
                    remember(s, MIN_EXPLICIT)


# -- key shapes ------------------------------------------------------------------------------------------------
# Shapes detect-secrets does not cover (or covers only in part: it finds a private key's header line, and a JWT's
# first two parts). Run before its plugins, so a whole block goes at once.
EXTRA_SHAPES = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
               re.S),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),   # a whole JWT
    re.compile(r"\b(?:sk|pk|rk)[-_](?:live|test|proj|ant|svcacct|admin)?[-_]?[A-Za-z0-9_-]{16,}"),  # sk-... keys
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),                                          # Hugging Face
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),                                        # Google API key
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),                                 # GitHub fine-grained
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),                                   # GitHub, any length
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),                                  # Slack, any form
    re.compile(r"(?<=://)[^/\s:@'\"<>]+:[^/\s@'\"<>]+(?=@)"),                        # user:password@ in URLs
    re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{8,}"),                          # Authorization: Bearer
]
# Vendor tokens with a fixed prefix and a fixed length / alphabet (the shapes gitleaks and the vendors document),
# beyond detect-secrets' set (which has AWS, GitHub, some GitLab, Slack, Stripe, OpenAI, SendGrid, Twilio, npm's
# _authToken, PyPI, Azure's 88-character AccountKey, Artifactory, ...). One alternation, run only when one of the
# literal prefixes is in the text.
TOKEN_PREFIXES = ("dapi", "glpat-", "gldt-", "glrt-", "glptt-", "ATATT3", "HRKU-", "shpat_", "shpca_", "shppa_",
                  "shpss_", "dop_v1_", "doo_v1_", "dor_v1_", "npm_", "dp.", "PMAK-", "hvs.", "hvb.", ".atlasv1.",
                  "glsa_", "glc_", "lin_api_", "pul-", "r8_", "gsk_", "sntryu_", "sntrys_", "sbp_",
                  "figd_", "dt0c01.", "NRAK-", "AGE-SECRET-KEY-1", "lsv2_", "xapp-")
TOKEN_SHAPES = re.compile("|".join([
    r"\bdapi[0-9a-f]{32}(?:-\d+)?\b",                           # Databricks personal access token
    r"\bgl(?:pat|dt|rt|ptt)-[0-9A-Za-z_-]{20,}",                 # GitLab personal / deploy / runner tokens
    r"\bATATT3[A-Za-z0-9_=-]{150,}",                              # Atlassian API token
    r"\bHRKU-[0-9A-Za-z_-]{58,}",                                 # Heroku API key (v2)
    r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",                    # Shopify access tokens / shared secrets
    r"\bdo[opr]_v1_[a-f0-9]{64}\b",                               # DigitalOcean
    r"\bnpm_[A-Za-z0-9]{36}\b",                                   # npm access token
    r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b",    # Doppler
    r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",                        # Postman API key
    r"\bhv[sb]\.[A-Za-z0-9_-]{90,}",                              # HashiCorp Vault service / batch token
    r"\b[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}",               # Terraform Cloud / Enterprise
    r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b",                   # Grafana service account token
    r"\bglc_[A-Za-z0-9+/]{32,400}={0,2}",                         # Grafana Cloud token
    r"\blin_api_[A-Za-z0-9]{40}\b",                               # Linear
    r"\bpul-[a-f0-9]{40}\b",                                      # Pulumi
    r"\br8_[A-Za-z0-9]{37}\b",                                    # Replicate
    r"\bgsk_[A-Za-z0-9]{52}\b",                                   # Groq
    r"\bsntryu_[a-f0-9]{64}\b|\bsntrys_eyJ[A-Za-z0-9+/=_-]{40,}",  # Sentry user / org tokens
    r"\bsbp_[a-f0-9]{40}\b",                                      # Supabase
    r"\bfigd_[A-Za-z0-9_-]{40}\b",                                # Figma
    r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b",                    # Dynatrace
    r"\bNRAK-[A-Z0-9]{27}\b",                                     # New Relic user key
    r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b",  # age
    r"\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b",              # LangSmith
    r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+",                          # Slack app-level token
]))
# Credential fields of connection strings and query strings: ``Password=...;``, ``Pwd=...``, ``AccountKey=...``,
# ``SharedAccessKey=...``, ``?token=...&``, ``&sig=...`` (ODBC, JDBC, ADO.NET, Azure, URL queries; any case).
# A field counts when it is ``;`` / ``&`` / ``?`` separated (before or after it) and its name is a secret name or
# one of CONN_FIELDS; only its value is masked (``Pwd={p;w}`` -> ``Pwd={****}``), never the separators.
CONN_FIELDS = frozenset({"pwd", "pass", "sig", "passwd", "password", "accountkey", "sharedaccesskey",
                         "sharedaccesssignature", "token", "secret", "apikey", "key", "x-amz-signature",
                         "x-amz-security-token", "access_token", "refresh_token", "id_token", "client_secret"})
_VALUE = r"""(?P<v>\{[^}\n]*\}|[^;&\s"'<>]+)"""
# a field after a separator: ``;Pwd=...``, ``&sig=...``, ``?token=...``, ``;User Id=...``
_CONN_NEXT = re.compile(r"[;&?][ \t]*(?P<name>[A-Za-z][A-Za-z0-9_.-]*(?: [A-Za-z][A-Za-z0-9_.-]*)?)[ \t]*=[ \t]*"
                        + _VALUE + r"""(?=[;&"'\s<>]|$)""")
# the first field of a string (``Password=...;Server=...``): found from its ``=`` (a scan that starts at every
# word would cost the long texts dearly), its name read backwards
_CONN_FIRST = re.compile("=" + _VALUE + "(?=[;&])")
_NAME_BEFORE = re.compile(r"""(?:^|(?<=["'\s(]))[A-Za-z][A-Za-z0-9_.-]*$""")
# ``NAME = "value"``, ``NAME: value``, ``NAME=value`` in any text (a diff, a .env file, printed config): the
# value is masked when NAME is a secret name. Unquoted values count only when they are not a number and not a
# plain identifier without digits (``token = api_token`` stays readable; ``password=hunter22`` does not).
# The separator never crosses a line: ``api_key:`` followed by a nested mapping on the next lines (YAML) is a key,
# not a value.
_ASSIGNED = re.compile(r"""(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>["']?[ \t]*(?::(?!:)|=(?!=)|:=|=>)[ \t]*)"""
                       r"""(?:"(?P<dq>(?:\\.|[^"\\\n]){4,}?)"|'(?P<sq>(?:\\.|[^'\\\n]){4,}?)'"""
                       r"""|(?P<v>[^\s"',;()\[\]{}<>]{4,})(?=[\s"',;)\]}<>]|$))""")
# Plugins left out: IPPublicDetector (an address is not a secret); the keyword / entropy plugins, which are not
# regex rule sets (the name rules do the keyword work; entropy would mask digests and run ids); and the
# keyword-context detectors (Cloudant, IBM COS HMAC, IBM Cloud IAM, SoftLayer: ``<vendor> ... key = value``),
# which the name rule covers (``ibm_cloud_api_key = "..."``) and which cost 80% of the scan time.
_SKIP_PLUGINS = {"IPPublicDetector", "CloudantDetector", "IbmCosHmacDetector", "IbmCloudIamDetector",
                 "SoftlayerDetector"}
# Plugins run only when one of these strings is in the text (each pattern starts with one of them).
_NEEDS = {"ArtifactoryDetector": ("AKC", "AP"), "AWSKeyDetector": ("A3T", "ABIA", "ACCA", "AKIA", "ASIA", "aws", "AWS"),
          "AzureStorageKeyDetector": ("AccountKey",), "BasicAuthDetector": ("://",),
          "GitHubTokenDetector": ("gh",), "JwtTokenDetector": ("eyJ",), "NpmDetector": ("_authToken",),
          "OpenAIDetector": ("sk-",), "PrivateKeyDetector": ("PRIVATE", "BEGIN"), "PypiTokenDetector": ("pypi-",),
          "SendGridDetector": ("SG.",), "StripeDetector": ("_live_",), "SlackDetector": ("xox", "XOX", "hooks."),
          "MailchimpDetector": ("-us",), "SquareOAuthDetector": ("sq0csp",)}
_PLUGINS: list | None = None


def _plugins() -> list:
    """detect-secrets' regex detectors, instantiated once (imported on first use: ~0.15 s)."""
    global _PLUGINS
    if _PLUGINS is None:
        try:
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
            from detect_secrets.plugins.base import RegexBasedDetector

            found = []
            for cls in get_mapping_from_secret_type_to_class().values():
                if issubclass(cls, RegexBasedDetector) and cls.__name__ not in _SKIP_PLUGINS:
                    try:
                        found.append(cls())
                    except TypeError:  # a plugin that needs settings
                        continue
            _PLUGINS = found
        except ImportError:  # pragma: no cover - a core dependency; the extra shapes still apply
            log.warning("nbops: detect-secrets is not installed; only nbops's own key shapes are masked "
                        "(pip install detect-secrets).")
            _PLUGINS = []
    return _PLUGINS


def warm() -> None:
    """Load the key-shape rules now (the import warm-up calls this while the person types)."""
    _plugins()


# Spans left alone: images embedded as data URIs (HTML) or as base64 output data (.ipynb).
_PROTECTED = re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/=]+|\"image/(?:png|jpeg|gif|webp)\":\s*"
                        r"\"[A-Za-z0-9+/=\\n]+\"")


def _value_forms() -> list[str]:
    global _FORMS
    if _FORMS is None:
        with _LOCK:
            forms: set[str] = set()
            for v in _VALUES:
                forms |= _forms(v)
            _FORMS = sorted(forms, key=len, reverse=True)
    return _FORMS


@lru_cache(maxsize=4096)
def _is_conn_field(name: str, extra: str = "", allowed: str = "") -> bool:
    name = name.strip()
    if name.lower() in CONN_FIELDS:
        return True
    if not _is_secret_name(name.replace(" ", "_"), extra, allowed):
        return False
    words = _words(name)  # SharedAccessKeyName, AccessKeyId: the name of a credential, not the credential
    return bool(words) and words[-1] not in ("name", "id", "type", "version")


def _conn_value(name: str, v: str, env: tuple[str, str]) -> str | None:
    """The credential in field ``name=v`` of a connection / query string (braces dropped), or None."""
    inner = v[1:-1] if v.startswith("{") else v
    if not inner or inner == MASK or not _is_conn_field(name, *env):
        return None
    if name.strip().lower() == "key" and _wordlike(inner):
        return None  # ?key=species&sort=asc: a key of something, not a credential
    return inner


def _conn_spans(s: str) -> list[tuple[int, int, str]]:
    """(start, end, credential) of every credential field value in ``s`` (inside braces when braced)."""
    spans = []
    env = (os.environ.get(ENV_NAMES, ""), os.environ.get(ENV_NOT_NAMES, ""))
    for m in _CONN_NEXT.finditer(s):
        v = _conn_value(m.group("name"), m.group("v"), env)
        if v is not None:
            b = m.start("v") + (1 if m.group("v").startswith("{") else 0)
            spans.append((b, b + len(v), v))
    for m in _CONN_FIRST.finditer(s):
        n = _NAME_BEFORE.search(s, max(0, m.start() - 64), m.start())
        v = n and _conn_value(n.group(0), m.group("v"), env)
        if v is not None:
            b = m.start("v") + (1 if m.group("v").startswith("{") else 0)
            spans.append((b, b + len(v), v))
    return sorted(set(spans))


def _wordlike(v: str) -> bool:
    """A plain word (letters and ``_`` only): a name or a setting, never learned as a secret value."""
    return v.isidentifier() and not any(c.isdigit() for c in v)


def _conn_fields(s: str) -> str:
    if "=" not in s or not (";" in s or "&" in s or "?" in s):
        return s
    out, last = [], 0
    for b, e, _ in _conn_spans(s):
        if b >= last:
            out += [s[last:b], MASK]
            last = e
    return "".join(out) + s[last:] if out else s


def _assigned(m: re.Match) -> str:
    if not is_secret_name(m.group("name").rsplit(".", 1)[-1]):
        return m.group(0)
    q = '"' if m.group("dq") is not None else "'" if m.group("sq") is not None else None
    if q:  # a quoted value (backslash escapes inside it included)
        v = m.group("dq") if q == '"' else m.group("sq")
        if v == MASK or "{" in v:
            return m.group(0)
        return f"{m.group('name')}{m.group('sep')}{q}{MASK}{q}"
    v = m.group("v")
    if v == MASK or (v.isidentifier() and not any(c.isdigit() for c in v)) or re.fullmatch(r"[-+]?[\d.eE_]+", v) or v.startswith(("os.", "$")):
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{MASK}"


_TOKENISH = re.compile(r"[A-Za-z0-9_+/=.-]{10}")
_CACHE: dict[str, str] = {}
_CACHE_GEN = [-1]


def _redact_plain(s: str) -> str:
    """Cached per text (the same environment listing, the same notebook HTML skeleton come again and again)."""
    gen = (len(_VALUES), len(_DIGESTS), id(_DIGEST_KEY))
    if _CACHE_GEN[0] != gen:
        _CACHE.clear()
        _CACHE_GEN[0] = gen
    hit = _CACHE.get(s)
    if hit is None:
        hit = _redact_uncached(s)
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[s] = hit
    return hit


def _redact_uncached(s: str) -> str:
    for v in _value_forms():
        if v in s:
            s = s.replace(v, MASK)
    s = _mask_digests(s)
    s = _conn_fields(s)
    if "=" in s or ":" in s:
        s = _ASSIGNED.sub(_assigned, s)
    if not _TOKENISH.search(s) and "://" not in s and "PRIVATE" not in s:
        return s  # too short to hold any key shape below (each needs 10+ key characters in a row)
    for rx in EXTRA_SHAPES:
        s = rx.sub(MASK, s)
    if any(p in s for p in TOKEN_PREFIXES):
        s = TOKEN_SHAPES.sub(MASK, s)
    found = set()
    for p in _plugins():
        needs = _NEEDS.get(type(p).__name__)
        if needs and not any(n in s for n in needs):
            continue
        try:
            found.update(m for m in p.analyze_string(s) if isinstance(m, str) and len(m) >= MIN_EXPLICIT)
        except Exception as exc:  # noqa: BLE001 - a plugin bug must not stop the write
            log.debug("nbops: detect-secrets plugin %s failed: %s", type(p).__name__, exc)
    for m in sorted(found - {MASK}, key=len, reverse=True):
        if m.strip("* ") and m in s:
            s = s.replace(m, MASK)
    return s


def text(s: Any, fmt: str | None = None) -> Any:
    """``s`` with every known secret value and key shape masked (non-strings are returned unchanged).

    Structured text keeps its structure: JSON (any text that parses as a JSON object or array, e.g. a notebook)
    and, with ``fmt="yaml"``, YAML are parsed, their string values masked one by one (a string under a
    secret-named key entirely; keys, numbers, bools, nulls and nested mappings never) and the result still parses
    to the same structure. ``fmt`` is a file suffix or name (``"contract.yaml"``, ``".json"``) or None."""
    if not isinstance(s, str) or not s:
        return s
    if len(os.environ) != _ENV_SEEN[0]:  # a variable came or went (each tracked cell re-reads them all)
        learn_environ()
    kind = _structured_kind(s, fmt)
    if kind:
        out = _structured(s, kind)
        if out is not None:
            return out
    return _text(s)


def _text(s: str) -> str:
    if "base64" in s or "image/" in s:
        out, last = [], 0
        for m in _PROTECTED.finditer(s):
            out += [_redact_plain(s[last:m.start()]), m.group(0)]
            last = m.end()
        out.append(_redact_plain(s[last:]))
        return "".join(out)
    return _redact_plain(s)


# -- structured text ------------------------------------------------------------------------------------------
_IMAGE_KEYS = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _structured_kind(s: str, fmt: str | None) -> str | None:
    suffix = str(fmt or "").lower().rsplit(".", 1)[-1] if fmt else ""
    if suffix in ("yaml", "yml"):
        return "yaml"
    head = s.lstrip()[:1]
    if head in ("{", "[") and s.rstrip()[-1:] in ("}", "]"):
        return "json"
    return None


def _mask_tree(o: Any, secret_key: bool = False) -> Any:
    """A parsed JSON / YAML value with its strings masked: under a secret-named key a string (or the strings of a
    list) is masked whole; everything else goes through the text rules. Keys, numbers, bools and nulls stay."""
    if isinstance(o, str):
        if secret_key and o.strip() and o != MASK:
            return MASK
        return _text(o)
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            ks = k if isinstance(k, str) else None
            if ks in _IMAGE_KEYS:
                out[k] = v
                continue
            secret = ks is not None and is_secret_name(ks) and not _plain_value(ks, v)
            nk = _text(ks) if ks else k  # a key is kept, unless it is itself a known secret value or key shape
            out[nk if nk not in o and nk not in out else k] = _mask_tree(v, secret and not isinstance(v, dict))
        return out
    if isinstance(o, list):
        if not secret_key and len(o) > 1 and all(isinstance(x, str) for x in o) \
                and all(x.endswith("\n") for x in o[:-1]):
            # a text stored as its lines (a notebook's source and outputs): masked as one text, so a shape that
            # spans lines (a private-key block) goes whole; split into lines again
            joined = "".join(o)
            red = _text(joined)
            return o if red == joined else red.splitlines(keepends=True)
        return [_mask_tree(x, secret_key) for x in o]
    return o


def _structured(s: str, kind: str) -> str | None:
    """Mask JSON / YAML text without touching its structure; None when it does not parse as a mapping or list."""
    try:
        if kind == "json":
            data = json.loads(s)
        else:
            import yaml

            data = yaml.safe_load(s)
    except Exception:  # noqa: BLE001 - not JSON / YAML after all: the plain text rules apply
        return None
    if not isinstance(data, (dict, list)):
        return None
    masked = _mask_tree(data)
    if masked == data:
        return s
    # the plain rules on the whole text keep its layout (comments, order, indentation); used when they give the
    # same structure as masking value by value, else the masked values are written out again
    loads = json.loads if kind == "json" else __import__("yaml").safe_load
    flat = _text(s)
    try:
        if loads(flat) == masked:
            return flat
    except Exception:  # noqa: BLE001
        pass
    if kind == "json":
        return _json_like(s, masked)
    import yaml

    return yaml.safe_dump(masked, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _json_like(original: str, data: Any) -> str:
    """``data`` as JSON in the layout of ``original`` (indentation, ASCII escaping, final newline)."""
    m = re.search(r"\n( +)\S", original)
    indent = len(m.group(1)) if m else None
    ascii_only = original.isascii()
    out = json.dumps(data, indent=indent, ensure_ascii=ascii_only,
                     separators=None if indent is not None or ", " in original else (",", ":"))
    return out + "\n" if original.endswith("\n") else out


def plain(v: Any) -> Any:
    """numpy / pandas scalars as the Python values they hold (``np.float64(0.5)`` -> ``0.5``), recursively in
    lists, tuples and dicts, so a stored value reads as the user wrote it on numpy 1 and 2 alike."""
    if type(v) in (str, bool, int, float) or v is None:
        return v
    mod = type(v).__module__
    if mod.startswith("numpy"):
        item = getattr(v, "item", None)
        if item is not None and getattr(v, "ndim", 0) == 0:
            return plain(item())
        if hasattr(v, "tolist") and getattr(v, "size", 1e9) <= 50:
            return plain(v.tolist())
    if mod.startswith("pandas") and hasattr(v, "isoformat"):  # Timestamp
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        out = [plain(x) for x in v]
        return out if isinstance(v, list) else tuple(out)
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        return int(v)
    return v


def value(v: Any, limit: int | None = None) -> str:
    """A param or tag value as the text nbops stores: plain Python form, secrets masked, cut to ``limit``."""
    p = plain(v)
    s = p if isinstance(p, str) else str(p) if isinstance(p, (int, float, bool)) else repr(p)
    s = text(s)
    if limit and len(s) > limit:
        s = s[: limit - 3] + "..."
    return s


def mapping(d: dict | None, limit: int | None = None) -> dict:
    """Params or tags: secret-named keys dropped, every value through :func:`value`."""
    return {str(k): value(v, limit) for k, v in (d or {}).items()
            if not is_secret_name(str(k)) or str(k).startswith(("mlflow.", "nbops."))}


def profile_json(s: str | None) -> str | None:
    """A dataset profile (JSON): top / min / max values of secret-named columns masked, then :func:`text`."""
    if not s:
        return s
    try:
        data = json.loads(s)
    except ValueError:
        return text(s)

    def walk(o):
        if isinstance(o, dict):
            if is_secret_name(str(o.get("name", ""))):
                for k in ("top", "min", "max", "mean", "examples", "sample"):
                    if k in o:
                        o[k] = MASK
            for x in o.values():
                walk(x)
        elif isinstance(o, list):
            for x in o:
                walk(x)
    walk(data)
    return text(json.dumps(data, default=str))


def frame(df: Any) -> tuple[Any, list[str]]:
    """A pandas / polars DataFrame with the text values of its secret-named columns masked (``****``; missing
    values stay missing), for what nbops stores of it (a ``--snapshot`` parquet): ``(copy, masked column names)``,
    or ``(df, [])`` untouched when there is nothing to mask. Columns, their order, row count and the text dtype are
    kept; numbers and bools are not secret values. The masked values are learned (up to 1,000 distinct ones), so
    they are masked in any other text too. ``df`` itself is never changed."""
    cols = [c for c in getattr(df, "columns", []) if is_secret_name(str(c))]
    if not cols:
        return df, []
    mod = type(df).__module__
    masked: list[str] = []
    if mod.startswith("polars"):
        import polars as pl

        texts = [c for c in cols if df.schema[c] in (pl.Utf8, pl.Categorical)]
        for c in texts:
            for v in df[c].drop_nulls().unique().head(1000).to_list():
                remember(str(v))
        out = df.with_columns([pl.when(pl.col(c).is_null()).then(None).otherwise(pl.lit(MASK)).cast(pl.Utf8)
                               .alias(c) for c in texts]) if texts else df
        return out, [str(c) for c in texts]
    out = None
    for i, c in enumerate(df.columns):
        if c not in cols:
            continue
        col = df.iloc[:, i]
        if col.dtype.kind not in "OSU" and str(col.dtype) not in ("string", "str", "category"):
            continue
        if out is None:
            out = df.copy()
        for v in col.dropna().unique()[:1000]:
            remember(str(v))
        kept = col.astype(object) if str(col.dtype) == "category" else col
        out.isetitem(i, kept.where(col.isna(), MASK))
        masked.append(str(c))
    return (df, []) if out is None else (out, masked)


TEXT_SUFFIXES = {".txt", ".py", ".patch", ".diff", ".json", ".jsonl", ".ipynb", ".html", ".htm", ".md", ".csv",
                 ".tsv", ".yaml", ".yml", ".log", ".cfg", ".ini", ".toml", ".xml", ".sql", ".sh", ".r", ".env", ""}
MAX_FILE = 64 * 2**20


def file(path: str | os.PathLike) -> None:
    """Redact one text file in place (binary files and files over 64 MB are left alone)."""
    p = Path(path)
    if p.suffix.lower() not in TEXT_SUFFIXES or not p.is_file() or p.stat().st_size > MAX_FILE:
        return
    try:
        raw = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return
    if p.suffix.lower() == ".jsonl":
        red = "".join(text(line, ".json") for line in raw.splitlines(keepends=True))
    else:
        red = text(raw, p.suffix)
    if red != raw:
        p.write_text(red, encoding="utf-8")


def files(folder: str | os.PathLike) -> None:
    """Redact every text file under ``folder`` in place."""
    for p in Path(folder).rglob("*"):
        if p.is_file():
            file(p)


class Filter(logging.Filter):
    """A logging filter that masks what a log record says (installed on the console handler of ``nbops``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        red = text(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


def _install_log_filter() -> None:
    lg = logging.getLogger("nbops")
    if not any(isinstance(f, Filter) for f in lg.filters):
        lg.addFilter(Filter())


_install_log_filter()  # every nbops log line (warnings name URLs and errors) is masked at the source
