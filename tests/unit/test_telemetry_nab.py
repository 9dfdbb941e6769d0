"""The NAB scorer on cases small enough to score by hand (values computed here from the rules, not the module)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nbops.telemetry import nab

T = np.arange("2020-01-01T00:00", 20 * 5, 5, dtype="datetime64[m]").astype("datetime64[ns]")  # 20 rows, 5 min
WIN = [(T[10], T[14])]  # rows 10..14, width 5; probation = floor(0.15 * 20) = 3 rows


def sig(x):  # the rule, written out
    return -1.0 if x > 3 else 2 / (1 + math.exp(5 * x)) - 1


def det(*rows, n=20):
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


def lab(windows=WIN, n=20):
    return nab.FileLabels.build("f.csv", T[:n], windows)


def test_probation_length():
    assert nab.probation_length(20) == 3
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750


def test_detection_at_left_edge_is_perfect():
    r = nab.score_at([(lab(), det(10))], 0.5)
    assert r.raw == pytest.approx(1.0) and (r.tp, r.fp, r.fn) == (1, 0, 0) and r.score == pytest.approx(100.0)


def test_only_the_earliest_detection_in_a_window_counts():
    r = nab.score_at([(lab(), det(12, 13, 14))], 0.5)
    expect = sig(-(14 - 12 + 1) / 5) / sig(-1)
    assert r.raw == pytest.approx(expect) and r.tp == 1 and r.fp == 0


def test_false_positives_before_and_after_the_window():
    r = nab.score_at([(lab(), det(5, 15))], 0.5)
    # row 5: no preceding window -> full cost; row 15: 1 row past a width-5 window -> sigma(1/4)
    expect = -1.0 - 0.11 + 0.11 * sig(abs(15 - 14) / (5 - 1))
    assert r.raw == pytest.approx(expect) and (r.tp, r.fp, r.fn) == (0, 2, 1)


def test_probationary_detections_are_ignored_and_profiles_weigh_misses():
    assert nab.score_at([(lab(), det(1))], 0.5).raw == pytest.approx(-1.0)
    assert nab.score_at([(lab(), det(1))], 0.5, "reward_low_FN_rate").raw == pytest.approx(-2.0)
    assert nab.score_at([(lab(), det(5))], 0.5, "reward_low_FP_rate").raw == pytest.approx(-1.22)
    # null scores 0, perfect 100 whatever the profile
    assert nab.score_at([(lab(), det())], 0.5, "reward_low_FN_rate").score == pytest.approx(0.0)


def test_window_inside_probation_is_not_scored():
    early = [(T[0], T[2])]
    r = nab.score_at([(lab(early), det())], 0.5)
    assert (r.tp, r.fn, r.null, r.perfect) == (0, 0, 0, 0)


def test_optimize_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    files = []
    for k in range(4):
        n = 200
        t = (np.arange(n) * 5).astype("datetime64[m]").astype("datetime64[ns]")
        wins = [(t[60 + 30 * k], t[80 + 30 * k])]
        files.append((nab.FileLabels.build(f"f{k}", t, wins), np.round(rng.random(n), 2)))
    for profile in nab.PROFILES:
        best = nab.optimize(files, profile)
        brute = max((nab.score_at(files, th, profile) for th in np.unique(np.concatenate([s for _, s in files]))),
                    key=lambda r: r.raw)
        assert best.raw == pytest.approx(brute.raw)
        again = nab.score_at(files, best.threshold, profile)
        assert again.raw == pytest.approx(best.raw) and (again.tp, again.fp, again.fn) == (best.tp, best.fp, best.fn)


def test_corpus_normalisation():
    # two files, one window each: one detected at its left edge, one missed -> raw 0, null -2, perfect 2
    files = [(lab(), det(10)), (lab(), det())]
    r = nab.optimize(files)
    assert (r.raw, r.null, r.perfect) == (pytest.approx(0.0), -2.0, 2.0) and r.score == pytest.approx(50.0)


def test_alert_figures_and_threshold_for_a_false_positive_rate():
    # 20 rows, 17 scored; window rows 10..14. Scores: two outside (rows 5, 16), two inside (11, 12).
    s = np.zeros(20)
    s[[5, 16, 11, 12]] = [0.9, 0.5, 0.8, 0.7]
    r = nab.score_at([(lab(), s)], 0.6)  # detections: rows 5, 11, 12
    assert (r.alerts, r.fp, r.points) == (3, 1, 17)
    assert r.fp_per_10k == pytest.approx(1e4 / 17) and r.hit_share == pytest.approx(2 / 3)
    best = nab.optimize([(lab(), s)])
    assert best.threshold == pytest.approx(0.8) and (best.alerts, best.fp) == (2, 1) and best.points == 17
    # at most 1 false positive in 17 rows (588 per 10k): row 16 may fire, row 5 may not -> threshold just above 0.5
    assert 0.5 < nab.threshold_for_fp_rate([(lab(), s)], 1e4 / 17) <= 0.9
    assert nab.threshold_for_fp_rate([(lab(), s)], 0.0) > 0.9


def test_leave_one_out_chooses_on_the_other_groups_only():
    t = T
    # two "categories" a/, b/; setting "good" fires at each window's left edge, "bad" fires outside only.
    good, bad = det(10), det(5)
    runs = {"good": [(nab.FileLabels.build(n, t, WIN), good) for n in ("a/1", "b/1")],
            "bad": [(nab.FileLabels.build(n, t, WIN), bad) for n in ("a/1", "b/1")]}
    held = nab.leave_one_out(runs, lambda n: n.split("/")[0])
    assert {g: k for g, (k, _) in held.groups.items()} == {"a": "good", "b": "good"}
    assert held.score == pytest.approx(100.0) and held.fp == 0
    # a setting that is perfect on a/ only cannot be chosen for a/ (it is judged on b/)
    runs = {"fits_a": [(nab.FileLabels.build("a/1", t, WIN), good), (nab.FileLabels.build("b/1", t, WIN), bad)],
            "fits_b": [(nab.FileLabels.build("a/1", t, WIN), bad), (nab.FileLabels.build("b/1", t, WIN), good)]}
    held = nab.leave_one_out(runs, lambda n: n.split("/")[0])
    assert {g: k for g, (k, _) in held.groups.items()} == {"a": "fits_b", "b": "fits_a"}
    assert held.score < 0


def test_refractory_silences_the_rows_after_an_alert():
    # rows 5 and 7 outside, 11 and 12 in the window (10..14): with a refractory of 3 rows, 7 is silenced by 5
    # and 12 by 11; row 16 (4 rows after 12) alerts again
    s = np.zeros(20)
    s[[5, 7, 11, 12, 16]] = 0.9
    r = nab.score_at([(lab(), s)], 0.5, refractory=3)
    assert (r.alerts, r.fp, r.tp) == (3, 2, 1)
    expect = -0.11 + 0.11 * sig(abs(16 - 14) / 4) + sig(-(14 - 11 + 1) / 5) / sig(-1)
    assert r.raw == pytest.approx(expect)
    # a silenced alert does not extend the period: row 9 (4 rows after the kept row 5) alerts
    s2 = np.zeros(20)
    s2[[5, 7, 9]] = 0.9
    assert nab.score_at([(lab(), s2)], 0.5, refractory=3).fp == 2


def test_optimize_with_a_refractory_is_exact_against_brute_force():
    rng = np.random.default_rng(1)
    files = []
    for k in range(4):
        n = 200
        t = (np.arange(n) * 5).astype("datetime64[m]").astype("datetime64[ns]")
        files.append((nab.FileLabels.build(f"f{k}", t, [(t[60 + 30 * k], t[80 + 30 * k])]),
                      np.round(rng.random(n) ** 8, 3)))  # few high scores, as a detector gives
    for profile in nab.PROFILES:
        best = nab.optimize(files, profile, refractory=4)
        cands = np.unique(np.concatenate([s for _, s in files]))
        cands = cands[cands >= np.sort(np.concatenate([s for _, s in files]))[::-1][int(0.02 * 800) - 1]]
        brute = max((nab.score_at(files, th, profile, refractory=4) for th in cands), key=lambda r: r.raw)
        assert best.raw == pytest.approx(brute.raw)
        again = nab.score_at(files, best.threshold, profile, refractory=4)
        assert again.raw == pytest.approx(best.raw) and (again.tp, again.fp, again.fn) == (best.tp, best.fp, best.fn)
    # the false-positive-rate threshold with a refractory never allows more than asked
    th = nab.threshold_for_fp_rate(files, 100.0, refractory=4)
    assert nab.score_at(files, th, refractory=4).fp_per_10k <= 100.0


@pytest.mark.slow
def test_the_benchmark_scores_the_references_on_the_files_it_ran_on(tmp_path):
    """benchmarks/nab.py's ours/theirs is like for like: a reference is scored with the same scorer on the files of
    the run it has rows for (not a published figure of other files), and ours beside it on the same files."""
    import json
    import re
    import shutil
    import subprocess
    import sys

    from nbops_testing import DATASETS, ROOT

    src = DATASETS / "nab"
    keys = ["artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/nyc_taxi.csv"]
    windows = json.loads((src / "labels" / "combined_windows.json").read_text())
    for key in keys:
        (tmp_path / "data" / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "data" / key, tmp_path / "data" / key)
        ref = tmp_path / "results" / "numenta" / key.split("/")[0] / f"numenta_{key.split('/')[1]}"
        ref.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "results" / "numenta" / key.split("/")[0] / f"numenta_{key.split('/')[1]}", ref)
    extra = "realKnownCause/no_reference.csv"  # a file the reference has no rows for
    shutil.copy(src / "data" / keys[1], tmp_path / "data" / extra)
    windows[extra] = windows[keys[1]]
    (tmp_path / "windows.json").write_text(json.dumps({k: windows[k] for k in [*keys, extra]}))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nab.py"), "--data", str(tmp_path / "data"),
                          "--windows", str(tmp_path / "windows.json"), "--grid", "default", "--protocol", "both"],
                         capture_output=True, text=True, check=True).stdout
    assert "on the 2 of these 3 files they have rows for" in out, out
    # the reference's in-sample standard score, computed here from its rows on those two files
    import pandas as pd

    files = []
    for key in keys:
        ts, _ = nab.read_series(src / "data" / key)
        rows = pd.read_csv(src / "results" / "numenta" / key.split("/")[0] / f"numenta_{key.split('/')[1]}")
        files.append((nab.FileLabels.build(key, ts, nab.load_windows(src / "labels" / "combined_windows.json")[key]),
                      rows["anomaly_score"].to_numpy(float)))
    want = nab.optimize(files, "standard").score
    standard = out.split("standard profile")[1].split("profile")[0]
    got = float(re.search(r"in-sample numenta\s+(-?[\d.]+)", standard).group(1))
    assert got == pytest.approx(want, abs=0.05)
    ours = float(re.search(r"in-sample ours\s+(-?[\d.]+)", standard).group(1))
    assert f"numenta {ours / got:.2f}" in standard.split("ours/theirs (insample, same files):")[1].splitlines()[0]
    assert re.search(r"LOCO\s+numenta\s+-?[\d.]+\s+fp/10k=\s*[\d.]+\s+alerts/day=", standard)
