"""Where records go. Resolved from the environment at call time, never at import time.

Order: ``MLFLOW_TRACKING_URI`` always wins; otherwise the embedded default, one SQLite MLflow store shared
by every notebook of the project at ``<project root>/.nbops/mlflow.db`` with artifacts in
``<project root>/.nbops/artifacts``. The project root is the nearest folder, from the notebook's folder
(or the working directory) upwards, that holds ``.nbops``, ``.git`` or ``pyproject.toml``; with none of
them, the starting folder itself. ``NBOPS_HOME`` overrides the ``.nbops`` folder outright.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ENV_HOME = "NBOPS_HOME"
ENV_OFFLINE = "NBOPS_OFFLINE"
ENV_SPOOL = "NBOPS_SPOOL_DIR"
ENV_PARENT = "NBOPS_PARENT_RUN_ID"          # set by `nbops run` for the kernel: magics log child runs
ENV_NOTEBOOK = "NBOPS_NOTEBOOK_PATH"        # set by `nbops run`: the notebook the kernel executes
ENV_RUN_PID = "NBOPS_RUN_PID"               # set by `nbops run`: its process, the root of the run's process tree
ENV_EXPERIMENT = "NBOPS_EXPERIMENT"         # default experiment for %%track
ENV_PROMETHEUS = "NBOPS_PROMETHEUS_URL"
ENV_DOWN_GRACE = "NBOPS_DOWN_GRACE_S"      # seconds new runs go straight to the spool after the store was down
ROOT_MARKERS = (".nbops", ".git", "pyproject.toml")
_session: dict[str, str] = {}              # "experiment": the last `%%track -e` of this kernel (use_experiment)
TRUTHY = {"1", "true", "yes", "on"}


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder from ``start`` upwards holding ``.nbops``, ``.git`` or ``pyproject.toml``."""
    here = Path(start or os.getcwd()).resolve()
    if here.is_file():
        here = here.parent
    for d in (here, *here.parents):
        if any((d / m).exists() for m in ROOT_MARKERS):
            return d
    return here


def home(start: str | os.PathLike | None = None) -> Path:
    """The ``.nbops`` folder of the project (created on first use by whoever writes)."""
    env = os.environ.get(ENV_HOME)
    return Path(env).expanduser().resolve() if env else project_root(start) / ".nbops"


def use_experiment(name: str | None) -> None:
    """Make ``name`` this kernel's experiment (``%%track -e NAME`` does): every later run that names no experiment
    -- ``%%track``, ``%dataversion``, ``%validate``, ``%drift``, ``%evaluate``, ``nbops.track()`` -- goes there.
    ``None`` forgets it (``%unload_ext nbops``): ``NBOPS_EXPERIMENT`` / ``MLFLOW_EXPERIMENT_NAME`` / ``Default``."""
    if name:
        _session["experiment"] = name
    else:
        _session.pop("experiment", None)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def down_grace_s() -> float:
    """After the store failed to answer, new runs go straight to the spool for this long (seconds,
    ``NBOPS_DOWN_GRACE_S``, default 30) instead of each waiting out MLflow's retries again."""
    raw = os.environ.get(ENV_DOWN_GRACE, "").strip()
    try:
        return float(raw) if raw else 30.0
    except ValueError:
        raise ConfigError(f"{ENV_DOWN_GRACE}={raw!r} is not a number of seconds: set it to e.g. 30, or unset it.") \
            from None


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    embedded: bool          # True: the default SQLite store under .nbops/
    artifact_root: str | None
    spool_dir: Path
    offline: bool
    parent_run_id: str | None
    experiment: str         # the kernel's experiment: its last `%%track -e`, else NBOPS_EXPERIMENT, ... 'Default'

    @property
    def is_sqlite(self) -> bool:
        return self.tracking_uri.startswith("sqlite:")

    @property
    def is_server(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://", "databricks"))

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.tracking_uri.split(":///", 1)[-1]) if ":///" in self.tracking_uri else None

    def describe(self) -> str:
        if self.embedded:
            kind = "embedded SQLite store"
        elif self.sqlite_path is not None and self.sqlite_path.parent.name == ".nbops":
            kind = "a project's embedded SQLite store, named by MLFLOW_TRACKING_URI"
        else:
            kind = "MLFLOW_TRACKING_URI"
        mode = " (offline: writes go to the spool)" if self.offline else ""
        return f"{self.tracking_uri} [{kind}]{mode}"


def settings(start: str | os.PathLike | None = None) -> Settings:
    """Resolve the settings now (cheap: no imports, no I/O beyond a few ``stat`` calls)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    h = home(start)
    if uri:
        uri = normalize_uri(uri)  # MLflow accepts a bare folder as a file store; keep that, but make it absolute.
        embedded, art = False, None
    else:
        uri = f"sqlite:///{h / 'mlflow.db'}"
        embedded, art = True, (h / "artifacts").as_uri()
    spool = Path(os.environ.get(ENV_SPOOL) or (h / "spool")).expanduser()
    exp = (_session.get("experiment") or os.environ.get(ENV_EXPERIMENT) or os.environ.get("MLFLOW_EXPERIMENT_NAME")
           or "Default")
    if not exp.strip():
        raise ConfigError(f"{ENV_EXPERIMENT} is set but empty: unset it or give an experiment name.")
    return Settings(uri, embedded, art, spool, env_flag(ENV_OFFLINE), os.environ.get(ENV_PARENT) or None, exp)


def normalize_uri(uri: str) -> str:
    """A tracking URI as :func:`settings` writes it (a bare folder becomes an absolute ``file:`` URI), so the
    target a spooled run recorded and a URI given by hand compare equal."""
    uri = uri.strip()
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        uri = Path(uri).expanduser().resolve().as_uri()
    return uri


def settings_for(uri: str, artifact_root: str | None = None, base: Settings | None = None) -> Settings:
    """Settings that write to the store ``uri`` (a spooled run's recorded target, or ``nbops sync --to``), with
    the spool and defaults of ``base`` (the current settings). The current embedded store keeps its artifact
    folder; another project's embedded store gets the ``artifact_root`` its runs recorded."""
    base = base or settings()
    uri = normalize_uri(uri)
    if uri == base.tracking_uri:
        return Settings(**{**base.__dict__, "offline": False})
    return Settings(uri, artifact_root is not None and uri.startswith("sqlite:"), artifact_root, base.spool_dir,
                    False, None, base.experiment)


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def environ(values: dict[str, str | None]):
    """Set (or unset, for None) environment variables for a moment; restored after."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            _put(k, v)
        yield
    finally:
        for k, v in old.items():
            _put(k, v)
