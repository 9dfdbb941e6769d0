"""No nbops call mutates a frame it was given (issue 23, item 1).

Every public function and magic that takes frames runs over frames with MultiIndex, integer and duplicate column
labels (plus a DatetimeIndex and attrs); afterwards each frame must be the same object with the same values,
dtypes, column labels (and their types), index and attrs -- and the same data version. A call may refuse a
frame (duplicate labels), but only with one line saying what to do (an NbopsError), still without touching it.

``test_every_public_entry_is_covered`` keeps the list honest: a new public function or magic must be added here
(or declared frame-free) before the suite passes.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import NbopsError

KINDS = ("multiindex", "integer", "duplicate")

# public API entries (nbops._LAZY) and magics that take no frame
FRAME_FREE = {"track", "Tracker", "DataVersion", "DriftReport", "promote", "rollback", "PromotionResult",
              "run_notebook", "runs", "status", "sync", "secret",
              "compare_runs", "prompt"}          # run ids; a prompt's name
FRAME_FREE_MAGICS = {"nbops", "promote", "prompt"}


def _frame(kind: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 300
    f = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 4, n), "c": rng.choice(list("xyz"), n)},
                     index=pd.date_range("2024-01-01", periods=n, freq="h", name="when"))
    f.columns = {"multiindex": pd.MultiIndex.from_tuples([("x", "a"), ("x", "b"), ("y", "c")]),
                 "integer": pd.Index([0, 1, 2]), "duplicate": pd.Index(["a", "a", "c"])}[kind]
    f.attrs["source"] = "test"
    return f


def _state(df: pd.DataFrame):
    return {"columns": [(c, type(c)) for c in df.columns], "columns_type": type(df.columns),
            "columns_names": list(df.columns.names), "dtypes": [str(d) for d in df.dtypes],
            "index": df.index.copy(), "attrs": dict(df.attrs),
            "version": nbops.fingerprint(df.copy(), profile=False).digest}


def _same(before: pd.DataFrame, state: dict, now: pd.DataFrame, what: str) -> None:
    after = _state(now)
    for k in ("columns", "columns_type", "columns_names", "dtypes", "attrs", "version"):
        assert after[k] == state[k], f"{what} changed the frame's {k}: {state[k]} -> {after[k]}"
    assert now.index.equals(state["index"]) and type(now.index) is type(state["index"]), f"{what} changed the index"
    pd.testing.assert_frame_equal(now, before, check_exact=True, obj=f"the frame after {what}")


def _model(f):
    from sklearn.dummy import DummyRegressor

    return DummyRegressor().fit(np.zeros((len(f), 1)), f.iloc[:, 0].to_numpy())


def _telemetry(f):
    from nbops.telemetry.api import analyze

    return analyze(source=f)


def _label(c) -> str:
    return "|".join(map(str, c)) if isinstance(c, tuple) else str(c)


def _api_calls(f, f2, kind):
    """(name, call) for every public function that takes frames; each returns normally or raises NbopsError."""
    first = f.columns[0]

    def logged_drift():
        return nbops.check_drift(f, f2, experiment="untouched")

    def prepared_drift():
        return nbops.check_drift(nbops.drift.prepare_reference(f), f2, log=False)

    def track_snapshot():
        with nbops.track("untouched", "snapshot") as t:
            nbops.data.log_to_run(t, f, "frame", snapshot=True)

    def validate_name():
        nbops.data.record_version(f2, f"ref_{kind}")
        return nbops.validate(f, against=f"ref_{kind}")

    return [
        ("check_drift", lambda: nbops.check_drift(f, f2, log=False)),
        ("check_drift logged", logged_drift),
        ("check_drift features=", lambda: nbops.check_drift(f, f2, features=list(f.columns[:2]), log=False)),
        ("check_drift reversed", lambda: nbops.check_drift(f2, f, log=False)),
        ("prepare_reference", prepared_drift),
        ("fingerprint", lambda: nbops.fingerprint(f)),
        ("data.diff", lambda: nbops.data.diff(f, f2)),
        ("data.record_version", lambda: nbops.data.record_version(f, f"frame_{kind}", snapshot=True)),
        ("data.log_to_run --snapshot", track_snapshot),
        ("validate against a frame", lambda: nbops.validate(f, against=f2)),
        ("validate as the reference", lambda: nbops.validate(f2, against=f)),
        ("validate against a name", validate_name),
        ("validation.infer_contract", lambda: nbops.validation.infer_contract(f)),
        ("evaluate", lambda: nbops.evaluate(_model(f), f, target=first, log_run=False)),
        ("telemetry.analyze", lambda: _telemetry(f)),
    ]


def _magic_lines(kind, f):
    t = _label(f.columns[0])
    return [
        "%drift f f2 --quiet -o rep",
        "%drift f2 f --quiet --no-log",
        f"%drift f f2 --quiet --no-log --features {_label(f.columns[0])},{_label(f.columns[1])}",
        "%dataversion f",
        "%dataversion f --snapshot --name snap",
        "%validate f --against f2",
        f"%validate f --against ref_{kind}",
        "%%track -n cell --data f --snapshot\nx = 1",
        f"%evaluate model f --target {t} --no-log",
        "%telemetry --source f",
    ]


# (call, kind) known to answer with a traceback instead of one line (the frame untouched): none left.
_KNOWN: set = set()


@pytest.mark.parametrize("kind", KINDS)
def test_no_call_mutates_a_frame(ip, kind):
    f, f2 = _frame(kind, 1), _frame(kind, 2)
    keep = {"f": (f, f.copy(deep=True), _state(f)), "f2": (f2, f2.copy(deep=True), _state(f2))}
    gaps, ran = [], []

    def check(what):
        for name, (obj, before, state) in keep.items():
            now = ip.user_ns.get(name, obj)
            assert now is obj, f"{what} replaced the variable {name}"
            _same(before, state, obj, f"{what} ({name}, {kind} labels)")

    for what, call in _api_calls(f, f2, kind):
        try:
            call()
            ran.append(what)
        except NbopsError as exc:
            assert "\n" not in str(exc).strip(), f"{what}: a refusal must be one line: {exc}"
        except Exception as exc:  # noqa: BLE001 - a traceback instead of one line: a gap (listed below)
            gaps.append((what, kind, f"{type(exc).__name__}: {exc}"))
        check(what)

    ip.user_ns.update(f=f, f2=f2, model=_model(f))
    for line in _magic_lines(kind, f):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            r = ip.run_cell(line)
        err = r.error_in_exec or r.error_before_exec
        if err is None:
            ran.append(line)
        elif not isinstance(err, NbopsError) or "Traceback" in out.getvalue():
            gaps.append((line, kind, f"{type(err).__name__}: {err}"))
        check(line)
    from nbops.tracking.flusher import flush

    assert flush()
    check("the background write")

    unexpected = [g for g in gaps if g[:2] not in _KNOWN]
    assert not unexpected, f"tracebacks instead of one line: {unexpected}"
    if kind != "duplicate":  # the calls really ran on these frames (not refused)
        must = {"check_drift", "check_drift logged", "check_drift features=", "prepare_reference", "fingerprint",
                "data.record_version", "validate against a frame", "validate against a name",
                "%drift f f2 --quiet -o rep", "%dataversion f --snapshot --name snap", "%validate f --against f2",
                "%%track -n cell --data f --snapshot\nx = 1"}
        assert must <= set(ran), f"refused on {kind} labels: {sorted(must - set(ran))}"
    if kind == "multiindex":
        assert "x|a" in set(ip.user_ns["rep"].to_frame().index), "drift names MultiIndex columns as x|a"


def test_every_public_entry_is_covered(ip):
    """Every public function is either exercised above or takes no frame; the same for every magic."""
    f = _frame("integer", 1)
    covered = {what.split(" ")[0].split(".")[-1] for what, _ in _api_calls(f, f, "integer")}
    lazy = set(nbops._LAZY)
    assert lazy - FRAME_FREE <= covered, \
        f"public entries not covered: {sorted(lazy - FRAME_FREE - covered)}"
    assert FRAME_FREE <= lazy, f"stale FRAME_FREE: {sorted(FRAME_FREE - lazy)}"
    magics = {name for _, name, _ in nbops._registered[id(ip)]}
    lines = {line.lstrip("%").split()[0] for line in _magic_lines("integer", f)}
    assert magics - FRAME_FREE_MAGICS <= lines, f"magics not covered: {sorted(magics - FRAME_FREE_MAGICS - lines)}"
