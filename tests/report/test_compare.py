"""Per-video predictions, intervals in the tables, and `tinlab compare` on prediction files written here."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tinlab.engine.evaluate import per_video_predictions
from tinlab.errors import DataError
from tinlab.report.compare import compare, compare_table
from tinlab.report.stats import NO_VERDICT, UNDECIDED, bootstrap_interval
from tinlab.report.tables import build_table


def test_per_video_predictions_by_hand():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    labels = torch.tensor([0, 2, 2])
    table = per_video_predictions(logits, labels, ["a", "b", "c"], twins=[1, None, 0])
    assert list(table.video) == ["a", "b", "c"] and list(table.pred) == [0, 1, 2]
    assert list(table.correct) == [1, 0, 1] and list(table.top5_correct) == [1, 1, 1]
    # a: class 0, twin 1, logit 3 > 1: right; b, c: class 2, twin 0: 1 > 0 and 2 > 0: right
    assert list(table.twin) == [1, 0, 0] and list(table.pair_correct) == [1, 1, 1]
    no_twins = per_video_predictions(logits, labels, ["a", "b", "c"])
    assert no_twins.pair_correct.isna().all()
    with pytest.raises(ValueError, match="2 video names for 3"):
        per_video_predictions(logits, labels, ["a", "b"])


def _run(tmp_path, name, correct, videos=None):
    """A metrics path whose predictions CSV says which of the videos were right."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    n = len(correct)
    pd.DataFrame({"index": range(n), "video": videos or [f"v{i}" for i in range(n)], "label": 0,
                  "pred": [0 if c else 1 for c in correct], "correct": [int(c) for c in correct],
                  "top5_correct": 1, "twin": pd.NA, "pair_correct": pd.NA}).to_csv(
        folder / "metrics.predictions.csv", index=False)
    return str(folder / "metrics.json")


def _table1(rows):
    """Table 1 rows from (model, correct, metrics files): one file (one run) or a list (seeds 0, 1, ...)."""
    out = []
    for m, c, f in rows:
        files = [f] if isinstance(f, str) else list(f)
        out.append({"model": m, "dataset": "d", "frames": 8, "val_top1": 100 * np.mean(c),
                    "seeds": " ".join(map(str, range(len(files)))), "metrics_file": " ".join(files)})
    return pd.DataFrame(out)


def _seeds(tmp_path, name, runs):
    """Metrics paths of several seeds of one model (each run's per-video correctness given)."""
    return [_run(tmp_path, f"{name}-s{s}", c) for s, c in enumerate(runs)]


def test_identical_prediction_files_differ_by_zero_with_p_one(tmp_path):
    rng = np.random.default_rng(0)
    tsn, tsm = rng.random(60) < 0.3, rng.random(60) < 0.7
    rows = [("tsn", tsn, _run(tmp_path, "tsn", tsn)), ("tsm", tsm, _run(tmp_path, "tsm", tsm)),
            ("tin", tsm, _run(tmp_path, "tin", tsm))]  # TIN's file: the same predictions as TSM's
    out = compare_table("table1", _table1(rows))
    assert list(zip(out.model, out.reference)) == [("tsm", "tsn"), ("tin", "tsn"), ("tin", "tsm")]
    same = out.iloc[2]
    assert (same.diff_top1, same.diff_top1_lo, same.diff_top1_hi, same.p_mcnemar) == (0.0, 0.0, 0.0, 1.0)
    # one run per row: training noise is unmeasured, so no row gets a directional verdict, not even TSM's
    # 40-point lead over TSN
    assert set(out.verdict) == {NO_VERDICT} and set(out.limited_by) == {"seeds"}
    assert out.p_seeds.isna().all() and out.p_holm.isna().all() and not out.control.any()
    # three seeds each, TIN's runs the same as TSM's: p = 1 over seeds, not distinguishable
    runs = [rng.random(60) < p for p in (0.6, 0.7, 0.8)]
    three = [("tsn", tsn, _seeds(tmp_path, "tsn3", [tsn, tsn, tsn])), ("tsm", tsm, _seeds(tmp_path, "tsm3", runs)),
             ("tin", tsm, _seeds(tmp_path, "tin3", runs))]
    same = compare_table("table1", _table1(three)).iloc[2]
    assert (same.diff_top1, same.p_seeds, same.p_holm) == (0.0, 1.0, 1.0) and same.verdict == UNDECIDED


def test_a_clear_difference_is_better_and_a_small_one_needs_more_videos(tmp_path):
    n = 100
    idx = np.arange(n)
    tsn = [idx < 30, idx < 28, idx < 32]
    tsm = [idx < 80, idx < 79, idx < 81]  # right on every video TSN gets right, and ~50 more: McNemar 50 vs 0
    tin = [idx < 83, idx < 84, idx < 80]  # 3 more than TSM (seed 0): McNemar 3 vs 0, p = 0.25
    rows = [(m, c[0], _seeds(tmp_path, m, c)) for m, c in (("tsn", tsn), ("tsm", tsm), ("tin", tin))]
    out = compare_table("table1", _table1(rows)).set_index(["model", "reference"])
    better = out.loc[("tsm", "tsn")]
    assert better.diff_top1 == pytest.approx(50.0) and better.p_mcnemar == pytest.approx(2 * 0.5 ** 50)
    assert (better.only_model_right, better.only_reference_right) == (50, 0)
    from scipy.stats import ttest_rel
    # per-seed differences 50, 51, 49 points: a paired t-test over the seeds
    assert better.p_seeds == pytest.approx(ttest_rel([0.80, 0.79, 0.81], [0.30, 0.28, 0.32]).pvalue)
    assert better.p_holm < 0.05
    assert better.verdict == "better" and pd.isna(better.videos_needed)
    close = out.loc[("tin", "tsm")]
    assert close.p_mcnemar == pytest.approx(0.25) and close.verdict == UNDECIDED
    # 3 vs 0 discordant per 100 videos; 3 comparisons: p < 0.05 / 3 needs 7 vs 0 (p = 1/64): 7 / 0.03 videos
    # -> round(3 n / 100) >= 7 from n = 217
    assert close.videos_needed == 217 and close.limited_by == "videos" and better.limited_by == ""
    tin_bad = _seeds(tmp_path, "tin2", [idx < 30, idx < 31, idx < 29])
    worse = compare_table("table1", _table1([rows[1], ("tin", tsn[0], tin_bad)]))
    assert list(worse.verdict) == ["worse"]


def test_tin_against_rtcn_is_the_negative_control(tmp_path):
    """Wherever TIN and r-TCN are both in a table, their comparison is a row marked as the control; seeds
    pair (the same seed, the same data order and initial weights)."""
    rng = np.random.default_rng(3)
    runs = {m: [rng.random(80) < p for p in (0.7, 0.75, 0.8)] for m in ("tsn", "tsm", "tin", "rtcn")}
    rows = [(m, r[0], _seeds(tmp_path, m, r)) for m, r in runs.items()]
    out = compare_table("table1", _table1(rows))
    control = out[out.control]
    assert list(zip(control.model, control.reference)) == [("tin", "rtcn")]
    row = control.iloc[0]
    assert row.seeds == row.reference_seeds == "0 1 2" and row.mcnemar_seeds == "0 vs 0"
    per_seed = [c.mean() for c in runs["tin"]], [c.mean() for c in runs["rtcn"]]
    from scipy.stats import ttest_rel
    assert row.p_seeds == pytest.approx(ttest_rel(*per_seed).pvalue)
    assert len(out) == 3 + 2 + 1  # 3 vs TSN, 2 vs TSM, the control
    assert not compare_table("table1", _table1([r for r in rows if r[0] != "rtcn"])).control.any()


def test_videos_must_be_the_same(tmp_path):
    a, b = np.ones(5, bool), np.zeros(5, bool)
    rows = [("tsn", a, _run(tmp_path, "tsn", a)), ("tin", b, _run(tmp_path, "tin", b, videos=list("abcde")))]
    with pytest.raises(DataError, match="different videos"):
        compare_table("table1", _table1(rows))
    rows[1] = ("tin", b, str(tmp_path / "missing" / "metrics.json"))
    with pytest.raises(DataError, match="no per-video predictions"):
        compare_table("table1", _table1(rows))


def test_table5_rows_against_the_default_row_over_seeds(tmp_path):
    rng = np.random.default_rng(1)
    runs = {(g, r, s): rng.random(40) < 0.6 for g in (1, 2) for r in (True, False) for s in (0, 1)}
    frame = pd.DataFrame([{"groups": g, "reverse": r, "boundary": "zero", "frames": 8, "dataset": "d",
                           "seeds": "0 1", "val_top1": 0.0,
                           "metrics_file": " ".join(_run(tmp_path, f"g{g}{r}s{s}", runs[(g, r, s)]) for s in (0, 1))}
                          for g in (1, 2) for r in (True, False)])
    (tmp_path / "table5.csv").write_text(frame.to_csv(index=False))
    out = compare([tmp_path / "table5.csv"])
    assert set(out.reference) == {"G=2 reverse=True boundary=zero"} and len(out) == 3
    row = out[out.model == "G=1 reverse=True boundary=zero"].iloc[0]
    both = lambda g, r: np.stack([runs[(g, r, 0)], runs[(g, r, 1)]])  # noqa: E731
    assert row.diff_top1 == pytest.approx(100 * (both(1, True).mean() - both(2, True).mean()))
    assert row.seeds == "0 1" and row.mcnemar_seeds == "0 vs 0" and row.videos == 40
    assert set(out.limited_by) <= {"", "videos", "seeds"}

    # The default row is right on half the videos with both seeds; G=1 on every video with seed 0 and on
    # none with seed 1. McNemar on seed 0 (20 vs 0 discordant) is decisive, the interval over seeds holds 0
    # (the seed draws give G=1 100%, 0% or 50%): seeds, not videos, are what is missing.
    half = np.arange(40) < 20
    rows = {"G=2": [half, half], "G=1": [np.ones(40, bool), np.zeros(40, bool)]}
    files = {k: " ".join(_run(tmp_path, f"{k}-s{s}", c) for s, c in enumerate(v)) for k, v in rows.items()}
    split = pd.DataFrame([{"groups": g, "reverse": True, "boundary": "zero", "frames": 8, "dataset": "d",
                           "seeds": "0 1", "metrics_file": files[f"G={g}"]} for g in (2, 1)])
    decided = compare_table("table5", split).iloc[0]
    assert decided.p_mcnemar < 1e-5 and decided.diff_top1 == 0.0 and decided.p_seeds == 1.0
    assert decided.verdict == UNDECIDED and decided.limited_by == "seeds"
    assert pd.isna(decided.videos_needed)

    frame.loc[frame.groups == 2, "groups"] = 4  # no default row left
    (tmp_path / "table5.csv").write_text(frame.to_csv(index=False))
    with pytest.raises(DataError, match="0 rows with TIN's defaults"):
        compare([tmp_path / "table5.csv"])


def test_tables_carry_intervals_over_videos_and_seeds():
    rng = np.random.default_rng(2)
    correct = [rng.random(30) < p for p in (0.5, 0.6, 0.7)]

    def row(seed, c):
        return dict(model="tin", groups=2, reverse=True, boundary="zero", options="{}", frames=8, dataset="d",
                    backbone="resnet18", input_size=48, seed=seed, val_top1=100 * c.mean(), val_top5=100.0,
                    pair_accuracy=None, params=1, gflops=0.1, metrics_file=f"s{seed}/metrics.json",
                    _correct=c, _top5_correct=np.ones(30, bool), _pair_correct=np.zeros(0, bool))

    table = build_table("table5", pd.DataFrame([row(s, c) for s, c in enumerate(correct)]))
    _, lo, hi = bootstrap_interval(np.stack(correct))
    assert (table.val_top1_lo[0], table.val_top1_hi[0]) == (pytest.approx(100 * lo), pytest.approx(100 * hi))
    assert table.val_top1_lo[0] < table.val_top1[0] < table.val_top1_hi[0]
    assert table.val_top5_lo[0] == table.val_top5_hi[0] == 100.0
    assert math.isnan(table.pair_accuracy_lo[0])  # no twins: no interval
    assert list(table.columns[4:10]) == ["val_top1", "val_top1_lo", "val_top1_hi", "val_top1_std", "val_top5",
                                         "val_top5_lo"]
    t1 = build_table("table1", pd.DataFrame([{**row(0, correct[0]), "model": "tsn"}]).drop(columns="_correct"))
    assert math.isnan(t1.val_top1_lo[0])  # metrics without predictions: empty interval, not an error


def test_the_committed_negative_control_is_never_a_verdict():
    """TIN and r-TCN compute the same function from the same weights on the same data: in the committed
    default-profile comparisons their row exists at every number of frames of Table 1, pairs the same seeds,
    and never reads "better" or "worse" (that would be the verdict rule, or the equivalence, failing)."""
    from pathlib import Path

    reference = Path(__file__).resolve().parents[2] / "results" / "reference"
    comparisons = pd.read_csv(reference / "comparisons.csv")
    control = comparisons[comparisons.control]
    frames = sorted(pd.read_csv(reference / "table1.csv").frames.unique())
    assert sorted(control[control["table"] == "table1"].frames) == frames
    assert (control.seeds.astype(str) == control.reference_seeds.astype(str)).all()
    assert (control.seeds.astype(str).str.split().str.len() >= 3).all()
    assert not control.verdict.isin(["better", "worse"]).any(), control.to_string()


def test_two_runs_that_label_a_video_differently_are_not_compared(tmp_path):
    """The same video names with other labels: another validation list, not a comparison of two models."""
    a = _run(tmp_path, "a", [1, 0, 1, 1])
    b = _run(tmp_path, "b", [1, 1, 0, 1])
    path = tmp_path / "b" / "metrics.predictions.csv"
    preds = pd.read_csv(path)
    preds.loc[2, "label"] = 5
    preds.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"labels video 'v2' as 5, .*a/metrics.json as 0 \(1 videos disagree\)"):
        compare_table("table1", _table1([("tsm", [1, 0, 1, 1], a), ("tsn", [1, 1, 0, 1], b)]))


def test_compare_names_the_tables_it_knows(tmp_path):
    path = tmp_path / "foo.csv"
    _table1([("tsm", [1], _run(tmp_path, "a", [1]))]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"foo.csv: compare knows table1.csv, table2.csv and table5.csv"):
        compare([path])
