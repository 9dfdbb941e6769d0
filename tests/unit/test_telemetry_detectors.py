"""Detectors, incidents, time parsing and the frame source on data built here (and one NAB file)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops_testing import DATASETS
from nbops.errors import TelemetryError
from nbops.telemetry import detectors, grouping, prometheus, sources, timeparse
from nbops.telemetry.api import detect, incidents


def series(n=3000, step=300.0, seed=0, spike_at=2500, spike=8.0, gaps=True):
    """A daily sine + noise at 5-minute steps with jittered timestamps, holes, and one spike."""
    rng = np.random.default_rng(seed)
    t = 1.6e9 + np.arange(n) * step + rng.uniform(-20, 20, n)
    y = 10 + 3 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.3, n)
    y[spike_at] += spike
    keep = np.ones(n, bool)
    if gaps:
        keep[1000:1050] = False  # a four-hour hole
        keep[rng.choice(n, 60, replace=False)] = False
        keep[spike_at] = True
    return t[keep], y[keep], int(keep[:spike_at].sum())


@pytest.mark.parametrize("name", ["seasonal", "ensemble", "auto"])
def test_streaming_detectors_are_causal_each_score_uses_only_the_past(name):
    t, y, _ = series()
    det = detectors.get(name)
    assert det.causal
    full = det.score(t, y)
    for cut in (40, 700, 1500, 2300):
        np.testing.assert_allclose(det.score(t[:cut], y[:cut]), full[:cut], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", ["seasonal", "ensemble", "auto", "sr"])
def test_detectors_find_the_spike_despite_gaps_and_jitter(name):
    if name == "sr":
        pytest.importorskip("alibi_detect", reason="sr needs the optional alibi-detect (make test-alibi)")
    t, y, i = series()
    det = detectors.get(name)
    s = det.score(t, y)
    assert s.shape == y.shape and np.nanmin(s) >= 0 and np.nanmax(s) <= 1
    assert np.nanargmax(s[200:]) + 200 == i
    flagged = np.flatnonzero(np.nan_to_num(s) >= det.threshold("medium"))
    assert i in flagged and len(flagged) <= 5


def test_sr_without_alibi_detect_says_what_to_install():
    try:
        import alibi_detect  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("alibi-detect is installed here (.venv-alibi)")
    t, y, _ = series()
    with pytest.raises(TelemetryError, match=r'pip install "nbops\[alibi\]"') as err:
        detectors.get("sr").score(t, y)
    assert "\n" not in str(err.value)


def test_nothing_but_sr_imports_alibi_detect():
    import subprocess
    import sys

    code = ("import sys, numpy as np, pandas as pd\n"
            "from nbops.telemetry import detectors, api, grouping, nab, report\n"
            "t = np.arange(600) * 60.0; y = np.sin(t / 3600)\n"
            "for name in ('auto', 'ensemble', 'seasonal', 'robust'):\n"
            "    detectors.get(name).score(t, y)\n"
            "print('alibi_detect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["seasonal", "ensemble"])
def test_direction_and_sensitivity(name):
    t, y, i = series(spike=-8.0)
    det = detectors.get(name)
    assert det.score(t, y, "down")[i] >= det.threshold("medium")
    assert det.score(t, y, "up")[i] < det.threshold("high")
    s = det.score(t, y)
    counts = [(s >= det.threshold(k)).sum() for k in ("low", "medium", "high")]
    assert counts[0] <= counts[1] <= counts[2]
    with pytest.raises(TelemetryError, match="choose up, down or both"):
        det.score(t, y, "sideways")
    with pytest.raises(TelemetryError, match="--sensitivity"):
        det.threshold("extreme")
    with pytest.raises(TelemetryError, match="unknown; choose one of auto, cad_ose, ensemble, robust, seasonal, sr"):
        detectors.get("prophet")


def test_auto_scores_a_short_window_the_seasonal_baseline_cannot():
    """A kernel's first minutes: 90 one-second samples, idle CPU then a 10-second burst. The seasonal baseline is
    still warming up (all zeros); over the ensemble's warm-up auto scores each point robustly against the points up to
    it and flags the burst only -- the same scores as the first 90 points of a longer series get."""
    rng = np.random.default_rng(3)
    t = np.arange(90) * 1.0 + rng.uniform(-0.05, 0.05, 90)
    y = np.clip(rng.normal(8.0, 2.0, 90), 0, None)
    y[60:70] = rng.normal(97.0, 1.5, 10)
    assert np.nanmax(detectors.get("seasonal").score(t, y)) == 0.0
    det = detectors.get("auto")
    flagged = np.flatnonzero(det.score(t, y) >= det.threshold("medium"))
    assert set(flagged) == set(range(60, 70))
    assert not (detectors.get("robust").score(t, y, "down") >= det.threshold("high")).any()
    long_t, long_y, _ = series()
    ens = detectors.get("ensemble")
    full = det.score(long_t, long_y)  # past the warm-up, auto is the causal ensemble or a likelihood layer above it
    np.testing.assert_array_equal(full[ens.warmup:], np.fmax(ens.score(long_t, long_y),
                                                             det._likelihoods(long_t, long_y, "both"))[ens.warmup:])
    longer = det.score(np.r_[t, t[-1] + 1.0 + np.arange(400)], np.r_[y, np.full(400, 8.0)])
    np.testing.assert_array_equal(longer[:90], det.score(t, y))  # a point's score ignores what comes after it


def test_auto_adds_the_likelihood_of_cad_ose_and_of_the_residual_to_the_ensemble():
    """NAB's ec2_cpu_utilization_24ae8d has two labelled windows; the ensemble alone finds one at its medium
    threshold (with the refractory rows, as %telemetry alerts). HTM's anomaly likelihood over CAD OSE's and the
    seasonal residual's raw scores (Ahmad et al. 2017), maxed with the ensemble, finds both."""
    from nbops.telemetry import nab

    key = "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv"
    ts, y = nab.read_series(DATASETS / "nab" / "data" / key)
    lab = nab.FileLabels.build(key, ts, nab.load_windows(DATASETS / "nab" / "labels" / "combined_windows.json")[key])
    t = ts.astype(np.int64) / 1e9
    found = {}
    for name, det in (("auto", detectors.get("auto")), ("ensemble", detectors.Auto(likelihoods=False))):
        s = det.score(t, y)
        found[name] = nab.score_at([(lab, s)], det.threshold("medium"), refractory=det.refractory).tp
        assert det.alerts(s).sum() <= 10
    assert len(lab.windows) == 2 and found == {"auto": 2, "ensemble": 1}


def test_flat_line_and_missing_values():
    t = np.arange(500) * 60.0
    y = np.full(500, 5.0)
    y[100] = np.nan
    y[400] = 5.5
    s = detectors.get("seasonal").score(t, y)
    assert np.isnan(s[100]) and np.nanargmax(s) == 400 and np.nansum(s[:399] > 0.5) == 0


def test_nab_machine_failure_is_flagged_before_the_failure():
    """The labelled machine-temperature failure windows: at medium sensitivity the detector fires in them."""
    import json

    from nbops.telemetry import nab

    key = "realKnownCause/machine_temperature_system_failure.csv"
    ts, y = nab.read_series(DATASETS / "nab" / "data" / key)
    wins = json.loads((DATASETS / "nab" / "labels" / "combined_windows.json").read_text())[key]
    det = detectors.get("auto")
    s = det.score(ts.astype(np.int64) / 1e9, y)
    lab = nab.FileLabels.build(key, ts, nab.load_windows(DATASETS / "nab" / "labels" / "combined_windows.json")[key])
    r = nab.score_at([(lab, s)], det.threshold("medium"))
    assert r.tp >= 2 and len(wins) == 4


def frame(rows):
    return pd.DataFrame(rows, columns=["timestamp", "metric", "labels", "value"])


def test_incidents_group_by_time_and_shared_labels():
    base = pd.Timestamp("2024-01-01")
    rows = []
    for k in range(400):
        ts = base + pd.Timedelta(minutes=k)
        for metric, labels in (("cpu", 'instance="a"'), ("latency", 'instance="a"'), ("cpu", 'instance="b"')):
            rows.append((ts, metric, labels, 1.0))
    scored = frame(rows)
    scored["score"] = 0.0
    scored["anomaly"] = False

    def hit(metric, labels, minutes):
        m = (scored.metric == metric) & (scored.labels == labels) & scored.timestamp.isin(
            [base + pd.Timedelta(minutes=x) for x in minutes])
        scored.loc[m, ["anomaly", "score"]] = [True, 0.9]

    hit("latency", 'instance="a"', [100, 101, 102])
    hit("cpu", 'instance="a"', [102, 103])          # overlaps latency on a: same incident, latency leads
    hit("cpu", 'instance="b"', [101])               # same time, other instance: its own incident
    hit("cpu", 'instance="a"', [300])               # much later: another incident
    found = grouping.group(scored)
    assert len(found) == 3
    first = next(i for i in found if set(i.metrics) == {"latency", "cpu"})
    assert first.lead == 'latency{instance="a"}' and first.points == 5 and first.labels == {"instance": "a"}
    assert first.start == base + pd.Timedelta(minutes=100) and first.end == base + pd.Timedelta(minutes=103)
    assert sum(i.points for i in found) == int(scored.anomaly.sum()) == 7
    with pytest.raises(TelemetryError, match="detect"):
        incidents(frame(rows))


def test_detect_and_incidents_on_a_wide_user_frame():
    t, y, i = series(gaps=False)
    df = pd.DataFrame({"time": pd.to_datetime(t, unit="s"), "latency_ms": y, "host": "web-1"})
    tidy = sources.tidy(df)
    assert list(tidy.columns) == sources.COLUMNS and set(tidy.labels) == {'host="web-1"'}
    scored = detect(tidy, "seasonal", "medium", "up")
    assert scored.loc[scored.anomaly, "timestamp"].iloc[0] == tidy.timestamp.iloc[i]
    assert len(incidents(scored)) >= 1
    with pytest.raises(TelemetryError, match="no time column"):
        sources.tidy(pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(TelemetryError, match="neither a variable"):
        sources.tidy("/no/such/file.csv")


def test_time_parsing():
    assert timeparse.duration("1h30m") == 5400 and timeparse.duration("15s") == 15 and timeparse.duration(7) == 7
    with pytest.raises(TelemetryError, match="write a duration"):
        timeparse.duration("soon")
    assert timeparse.instant("now-1h", now=10_000) == 6400
    assert timeparse.instant("2024-01-01T00:00:00") == pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    with pytest.raises(TelemetryError, match="either --last or --start"):
        timeparse.window(last="1h", start="now-2h")
    with pytest.raises(TelemetryError, match="after --end"):
        timeparse.window(start=200, end=100)
    lab = {"job": 'a "quoted" one', "instance": "h:9100"}
    assert timeparse.parse_labels(timeparse.format_labels(lab)) == lab


def test_chunks_cover_every_step_once():
    parts = prometheus.chunks(0, 300 * 25_000, 300, points=10_000)
    grid = np.concatenate([np.arange(a, b + 1, 300) for a, b in parts])
    np.testing.assert_array_equal(grid, np.arange(0, 300 * 25_000 + 1, 300))
    assert all((b - a) / 300 + 1 <= prometheus.MAX_POINTS for a, b in parts)


@pytest.mark.parametrize("name", ["auto", "ensemble"])
def test_series_shorter_than_the_longest_context_are_scored(name):
    """auto runs the ensemble on every series now (no switch on length): a live view's first 1-6 samples."""
    det = detectors.get(name)
    for n in range(1, 7):
        s = det.score(np.arange(n) * 5.0, np.arange(n, dtype=float))
        assert s.shape == (n,) and np.isfinite(s).all()


def test_context_novelty_forgets_an_old_extreme_after_its_window():
    """An early spike squeezes the levels of a series whose range runs from its first point: 0 and 1 then share a
    level and a changed rhythm between them is invisible. With a trailing range the spike stops counting once it is
    ``window`` points behind, and the changed rhythm is seen."""
    y = np.tile([0.0] * 6 + [1.0] * 6, 60)
    y[10] = 1000.0
    y[600:612] = np.tile([0.0, 1.0], 6)
    since_start = detectors.context_novelty(y, bins=8, window=None)
    trailing = detectors.context_novelty(y, bins=8, window=200)
    assert since_start[600:615].max() == 0
    assert trailing[400:600].sum() == 0 and trailing[600:615].max() > 0
    np.testing.assert_array_equal(detectors.context_novelty(y[:605], bins=8, window=200), trailing[:605])


def test_context_novelty_learns_a_pattern_and_flags_a_changed_shape():
    """A repeating square wave stops producing new contexts once learnt; a changed rhythm *inside the usual
    range* produces new ones again. Causal: a prefix scores the same as the whole."""
    wave = np.tile([0.0] * 6 + [1.0] * 6, 60)  # period 12, 720 points
    y = wave.copy()
    y[600:612] = np.tile([0.0, 1.0], 6)  # same two values, faster rhythm
    c = detectors.context_novelty(y, bins=8)
    assert c[:24].sum() > 0 and c[100:600].sum() == 0  # learnt after the first periods
    assert c[600:615].max() > 0
    np.testing.assert_array_equal(detectors.context_novelty(y[:605], bins=8), c[:605])
    # the residual against the level says little there (seasonal stays quiet); the ensemble calls it
    t = np.arange(len(y)) * 60.0
    ens, seas = detectors.get("ensemble"), detectors.get("seasonal")
    s = ens.score(t, y)
    assert np.nanargmax(s[300:]) + 300 in range(600, 615) and s[600:615].max() >= ens.threshold("low")
    assert seas.score(t, y)[600:615].max() < seas.threshold("high")


def test_decayed_sum_is_the_causal_exponential_sum_over_long_series():
    x = np.random.default_rng(3).random(5000)
    for decay in (0.25, 0.87, 0.99):
        want, acc = np.empty(len(x)), 0.0
        for i, v in enumerate(x):  # the definition, written out
            acc = v + decay * acc
            want[i] = acc
        assert np.allclose(detectors._decayed_sum(x, decay), want, rtol=1e-12, atol=1e-12)


def test_an_alert_silences_the_refractory_rows_after_it():
    """A burst of abnormal rows pages once; a burst after the refractory period pages again (Detector.alerts;
    detect() keeps every anomalous point for the incident grouping, the raw scores are untouched)."""
    assert detectors.refractory(np.array([1, 1, 0, 1, 0, 0, 1, 1], bool), 2).tolist() == \
        [True, False, False, True, False, False, True, False]
    t, y, _ = series(n=3000, gaps=False, spike=0.0)
    y[2500] += 5.0
    y[2508] += 15.0  # the incident grows 40 minutes later: a new record, but the same episode
    ens = detectors.get("ensemble")
    s = ens.score(t, y)
    raw = np.nan_to_num(s) >= ens.threshold("high")
    assert raw[2500] and raw[2508]  # without the refractory period the episode pages twice
    kept = ens.alerts(s, "high")
    assert kept[2500] and not kept[2501:2500 + ens.refractory + 1].any()
    scored = detect(pd.DataFrame({"timestamp": pd.to_datetime(t, unit="s"), "metric": "m", "labels": "",
                                  "value": y}), "ensemble", "high")
    assert scored["anomaly"].to_numpy().tolist() == raw.tolist()
