"""``python -m tinlab compare --tables results/table1.csv ... --out results/comparisons.csv``: every model
of a table against its references, video by video and seed by seed, with a verdict that accounts for both
kinds of noise.

Comparisons (each on the same validation videos, from the per-video predictions beside each metrics JSON):

* ``table1`` (per number of frames) and ``table2`` (per dataset): each model against TSN and against TSM,
  and, wherever both are in the table, TIN against r-TCN: the **negative control** (``control`` True). The
  two compute the same function from the same initial weights on the same data (``tinlab equivalence``), so
  any difference between them is training noise, and a verdict other than "not distinguishable" on that
  row is a false positive of the rule;
* ``table5``: each ablation row against the paper's default TIN row (the registry's default groups,
  reverse offsets and boundary).

Per comparison: the difference in top-1 (percentage points) with its 95% interval from a paired bootstrap
over videos and seeds (paired by seed where both rows have the same seeds; :mod:`tinlab.report.stats`,
10,000 resamples, seed 0); ``p_seeds``, a t-test on the rows' per-seed top-1 (paired by seed where the
seeds pair, else Welch): the training run, not the video, is what a re-run draws anew; ``p_holm``, Holm's
adjustment of ``p_seeds`` over the comparisons of the table (one family per table); and the exact McNemar
test on one run of each (the first seed both rows share, else each row's first seed), which says whether
the videos alone could separate one pair of runs.

The verdict: "better" / "worse" when ``p_holm`` < 0.05 and the interval excludes 0; "no verdict: one run,
training noise unmeasured" when either row has a single run (however large the difference: a second seed
can move a row by tens of points); "no verdict: <model> diverged" when a row has a seed that diverged (its
table row has no accuracy: the comparison keeps its place with empty numbers, ``limited_by`` "divergence",
and takes no part in Holm's adjustment); else "not distinguishable at this size". For those, ``limited_by``:
"videos" when McNemar (Holm-adjusted over the table) is not below 0.05 (more validation videos would help),
"seeds" when it is (one pair of runs differs on these videos, but the runs of a row disagree: more seeds
would help, not more videos); and for "videos", ``videos_needed``: the number of validation videos at which
the observed discordance rates would give an exact McNemar p below 0.05 / m (m comparisons in the table:
Bonferroni, the most Holm can demand), empty when the observed difference is 0. How often the rule calls a
difference between two sets of runs of one model (disjoint seeds) is measured by ``bench/aa_rate.py``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .stats import (LEVEL, NO_VERDICT, RESAMPLES, holm, mcnemar_exact, paired_bootstrap_difference, seed_test, verdict,
                    videos_needed)
from .tables import read_predictions

ALPHA = 1 - LEVEL
COLUMNS = ["table", "dataset", "frames", "model", "reference", "control", "seeds", "reference_seeds", "mcnemar_seeds",
           "videos", "top1", "reference_top1", "diff_top1", "diff_top1_lo", "diff_top1_hi", "only_model_right",
           "only_reference_right", "p_mcnemar", "p_seeds", "p_holm", "verdict", "limited_by", "videos_needed"]
DIVERGED = "no verdict"  # "no verdict: tada diverged"
# The negative control: (model, reference) pairs that compute the same function (tinlab equivalence).
CONTROLS = {("tin", "rtcn")}


class Row:
    """One table row's runs: seeds and per-video correctness (seeds, videos), with the video names."""

    def __init__(self, table: str, record: pd.Series):
        files = str(record["metrics_file"]).split()
        seeds = [int(s) for s in str(record.get("seeds", "")).split()] if "seeds" in record else []
        if not seeds:  # tables 1 and 2 carry no seed column: the runs' own provenance says it
            seeds = [_seed_of(f) for f in files]
        if len(seeds) != len(files):
            raise DataError(f"{table}: row with metrics {files} lists seeds {seeds}")
        runs, videos, labels = [], None, None
        for f in files:
            preds = read_predictions(f)
            if preds is None:
                raise DataError(f"{f}: no per-video predictions beside it ({Path(f).stem}.predictions.csv); "
                                f"evaluate the run again with this tinlab")
            if videos is not None and tuple(preds.video) != videos:
                raise DataError(f"{f}: evaluated on other videos than {files[0]}")
            videos = tuple(preds.video)
            labels = _same_labels(labels if runs else None, preds, f, files[0])
            runs.append(preds.correct.to_numpy(bool))
        self.files, self.seeds, self.videos, self.correct = files, seeds, videos, np.stack(runs)
        self.labels = labels


def _same_labels(labels: np.ndarray | None, preds: pd.DataFrame, path: str, first: str) -> np.ndarray:
    """The labels of ``preds``, checked against ``labels`` of the same videos (None: nothing to check yet):
    two runs whose lists label a video differently were not evaluated on the same task."""
    mine = preds.label.to_numpy() if "label" in preds else None
    if labels is not None and mine is not None and not np.array_equal(labels, mine):
        i = int(np.flatnonzero(labels != mine)[0])
        raise DataError(f"{path} labels video {preds.video.iloc[i]!r} as {mine[i]}, {first} as {labels[i]} "
                        f"({int((labels != mine).sum())} videos disagree): not the same validation set; evaluate "
                        f"both runs on one list")
    return mine


def _seed_of(metrics: str) -> int:
    """The training seed recorded in a metrics JSON; -1 when it cannot be read (shown as such)."""
    try:
        return int(json.loads(Path(metrics).read_text())["provenance"]["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _label(table: str, record: pd.Series) -> str:
    if table == "table5":
        return f"G={int(record['groups'])} reverse={record['reverse']} boundary={record['boundary']}"
    return str(record["model"])


def _pairs(table: str, frame: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
    """(row, reference row) pairs of one table."""
    pairs = []
    if table in ("table1", "table2", "probes"):
        for _, group in frame.groupby(["dataset", "frames"], sort=False):
            by_model = {r["model"]: r for _, r in group.iterrows()}
            for ref in ("tsn", "tsm"):
                if ref not in by_model:
                    continue
                for name, r in by_model.items():
                    if name != ref and not (ref == "tsm" and name == "tsn"):
                        pairs.append((r, by_model[ref]))
            pairs += [(by_model[a], by_model[b]) for a, b in sorted(CONTROLS) if a in by_model and b in by_model]
    elif table == "table5":
        from ..models import default_op_options

        d = default_op_options("tin")
        default = frame[(frame.groups == d["groups"]) & (frame.reverse == d["reverse"]) &
                        (frame.boundary == d["boundary"])]
        if len(default) != 1:
            raise DataError(f"table5 has {len(default)} rows with TIN's defaults (groups {d['groups']}, reverse "
                            f"{d['reverse']}, boundary {d['boundary']}): the comparison needs exactly one")
        ref = default.iloc[0]
        pairs = [(r, ref) for i, r in frame.iterrows() if i != default.index[0]]
    else:
        raise ValueError(f"no comparisons defined for {table!r}")
    return pairs


def _limited_by(verdict_: str, p_mcnemar_adjusted: float) -> str:
    if verdict_ in ("better", "worse"):
        return ""
    if verdict_ == NO_VERDICT:
        return "seeds"
    return "seeds" if p_mcnemar_adjusted < ALPHA else "videos"


def _diverged(record: pd.Series) -> bool:
    """A row with a diverged seed (the table's ``diverged`` column): it has no accuracy to compare."""
    value = record.get("diverged", "")
    return isinstance(value, str) and value != ""


def compare_table(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    failed: list[str] = []  # per comparison: the rows of it that diverged ("" when none)
    for record, ref in _pairs(table, frame):
        gone = [_label(table, r) for r in (record, ref) if _diverged(r)]
        if gone:  # no accuracy, no test: the row stays, with the reason as its verdict
            model, reference = _label(table, record), _label(table, ref)
            rows.append({"table": table, "dataset": record["dataset"], "frames": int(record["frames"]),
                         "model": model, "reference": reference, "control": (model, reference) in CONTROLS,
                         "seeds": str(record.get("seeds", "")), "reference_seeds": str(ref.get("seeds", "")),
                         "p_seeds": np.nan})
            failed.append(" and ".join(gone))
            continue
        failed.append("")
        a, b = Row(table, record), Row(table, ref)
        if a.videos != b.videos:
            raise DataError(f"{table}: {a.files[0]} and {b.files[0]} were evaluated on different videos")
        if a.labels is not None and b.labels is not None:
            _same_labels(a.labels, pd.DataFrame({"video": a.videos, "label": b.labels}), b.files[0], a.files[0])
        diff, lo, hi = paired_bootstrap_difference(a.correct, b.correct)
        common = [s for s in a.seeds if s in b.seeds]
        sa, sb = (common[0], common[0]) if common else (a.seeds[0], b.seeds[0])
        only_a, only_b, p = mcnemar_exact(a.correct[a.seeds.index(sa)], b.correct[b.seeds.index(sb)])
        model, reference = _label(table, record), _label(table, ref)
        rows.append({"table": table, "dataset": record["dataset"], "frames": int(record["frames"]),
                     "model": model, "reference": reference, "control": (model, reference) in CONTROLS,
                     "seeds": " ".join(map(str, a.seeds)), "reference_seeds": " ".join(map(str, b.seeds)),
                     "mcnemar_seeds": f"{sa} vs {sb}", "videos": len(a.videos),
                     "top1": 100 * a.correct.mean(), "reference_top1": 100 * b.correct.mean(),
                     "diff_top1": 100 * diff, "diff_top1_lo": 100 * lo, "diff_top1_hi": 100 * hi,
                     "only_model_right": only_a, "only_reference_right": only_b, "p_mcnemar": p,
                     "p_seeds": seed_test(a.correct.mean(1), b.correct.mean(1), paired=a.seeds == b.seeds)})
    out = pd.DataFrame(rows, columns=COLUMNS[:19])
    if out.empty:
        return pd.DataFrame(columns=COLUMNS)
    out["p_holm"] = holm(out.p_seeds)
    out["verdict"] = [f"{DIVERGED}: {gone} diverged" if gone else verdict(d / 100, lo / 100, hi / 100, p)
                      for d, lo, hi, p, gone in zip(out.diff_top1, out.diff_top1_lo, out.diff_top1_hi, out.p_holm,
                                                    failed)]
    # What keeps an undecided pair undecided: the videos (McNemar not significant on this many), or the
    # seeds (one run of each differs on these videos, but the runs of a row disagree, or there is one run).
    out["limited_by"] = ["divergence" if gone else _limited_by(v, p)
                         for v, p, gone in zip(out.verdict, holm(out.p_mcnemar), failed)]
    bonferroni = ALPHA / max(int(out.p_mcnemar.notna().sum()), 1)  # the comparisons that were tested
    out["videos_needed"] = pd.array([
        videos_needed(a, b, n, bonferroni) if limit == "videos" else None
        for a, b, n, limit in zip(out.only_model_right, out.only_reference_right, out.videos, out.limited_by)],
        dtype="Int64")
    return out[COLUMNS]


def compare(tables: list[str | Path]) -> pd.DataFrame:
    frames = []
    for path in tables:
        path = Path(path)
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable results table ({e})") from None
        if "metrics_file" not in frame:
            raise DataError(f"{path}: no metrics_file column (not a table written by tinlab table)")
        if path.stem not in ("table1", "table2", "table5"):
            raise DataError(f"{path}: compare knows table1.csv, table2.csv and table5.csv (the file name says "
                            f"which comparisons to make), not {path.name!r}")
        frames.append(compare_table(path.stem, frame))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", nargs="+", required=True,
                        help="table1.csv / table2.csv / table5.csv written by `tinlab table` (named by table)")
    parser.add_argument("--out", required=True, help="CSV to write (results/comparisons.csv)")


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_csv
    from ..utils.provenance import provenance

    out = compare(args.tables)
    write_csv(out, args.out, provenance({"tables": args.tables, "resamples": RESAMPLES, "level": LEVEL,
                                         "correction": "holm per table", "test": "t-test over seeds",
                                         "single_run_test": "exact McNemar"}))
    shown = out.drop(columns=["dataset", "reference_seeds", "mcnemar_seeds", "only_model_right",
                              "only_reference_right"])
    print(shown.to_string(index=False, float_format="%.3g"))
    print(f"-> {args.out}")
    return 0
