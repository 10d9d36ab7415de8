"""False-positive rate of the comparison verdict on A/A pairs: one model against itself, on disjoint seeds.

Every run of a seed study (``bench/seed_spread.py``'s working folder) is one draw of a model's training
noise. For each model and number of frames with n seeds, every split of k seeds against k other seeds is
an A/A comparison: the two sides are the same model, so a "better" / "worse" verdict is a false positive.
Each split is judged exactly as ``tinlab compare`` judges a table row (unpaired: the seeds differ):

* ``rule``: the verdict of ``tinlab compare``: t-test over the seeds (Welch) below 0.05 and the two-level
  bootstrap interval (videos and seeds) excluding 0;
* ``interval_only``: the interval alone, for comparison (what the interval over seeds and videos says
  without the test over seeds);
* ``mcnemar_only``: the exact McNemar test on one run of each side below 0.05 (what a single-run
  comparison of the same model says).

No Holm adjustment (each split is one comparison on its own: the per-comparison rate, which Holm can only
lower). The splits of one model share runs, so they are not independent: the rate is an estimate whose
effective sample size is smaller than the number of splits.

Example::

    python bench/aa_rate.py --runs /tmp/spread/results/runs --k 2 --out results/reference/aa_rate.csv
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinlab.report.stats import mcnemar_exact, paired_bootstrap_difference, seed_test, verdict  # noqa: E402
from tinlab.report.tables import read_predictions  # noqa: E402
from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402

RESAMPLES = 2000  # per split (the verdict's own 10,000 change the interval's ends by a few tenths of a point)


def load_runs(runs: Path) -> pd.DataFrame:
    rows = []
    for metrics in sorted(runs.glob("*/metrics.json")):
        cfg = json.loads(metrics.read_text())["provenance"]["config"]
        preds = read_predictions(metrics)
        if preds is None:
            continue
        rows.append({"model": cfg["model"]["name"], "frames": cfg["data"]["num_segments"], "seed": cfg["run"]["seed"],
                     "options": json.dumps(cfg["model"]["options"], sort_keys=True), "videos": tuple(preds.video),
                     "correct": preds.correct.to_numpy(bool)})
    return pd.DataFrame(rows)


def splits(seeds: list[int], k: int):
    """Unordered pairs of disjoint k-subsets of ``seeds``."""
    seen = set()
    for a in itertools.combinations(seeds, k):
        for b in itertools.combinations([s for s in seeds if s not in a], k):
            key = frozenset([a, b])
            if key not in seen:
                seen.add(key)
                yield a, b


def judge(a: np.ndarray, b: np.ndarray) -> dict[str, bool]:
    """Directional (True) or not, by each rule, for runs a (k, videos) against runs b."""
    diff, lo, hi = paired_bootstrap_difference(a, b, resamples=RESAMPLES)
    p = seed_test(a.mean(1), b.mean(1), paired=False)
    interval = (lo > 0 or hi < 0) and diff != 0
    rule = verdict(diff, lo, hi, p) in ("better", "worse")
    return {"rule": rule, "interval_only": interval, "mcnemar_only": mcnemar_exact(a[0], b[0])[2] < 0.05}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="a seed study's runs folder")
    parser.add_argument("--k", type=int, nargs="+", default=[2], help="seeds per side")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = load_runs(args.runs)
    rows = []
    for (model, frames, _), g in runs.groupby(["model", "frames", "options"], sort=True):
        by_seed = {int(r.seed): r.correct for r in g.itertuples()}
        if len({r.videos for r in g.itertuples()}) != 1:
            raise SystemExit(f"{model} T{frames}: runs evaluated on different videos")
        for k in args.k:
            calls = [judge(np.stack([by_seed[s] for s in a]), np.stack([by_seed[s] for s in b]))
                     for a, b in splits(sorted(by_seed), k)]
            if not calls:
                continue
            row = {"model": model, "frames": frames, "seeds": len(by_seed), "k": k, "splits": len(calls)}
            for name in ("rule", "interval_only", "mcnemar_only"):
                row[f"{name}_directional"] = sum(c[name] for c in calls)
                row[f"{name}_rate"] = row[f"{name}_directional"] / len(calls)
            rows.append(row)
    table = pd.DataFrame(rows)
    total = {"model": "all", "frames": 0, "seeds": int(table.seeds.sum()), "k": " ".join(map(str, args.k)),
             "splits": int(table.splits.sum())}
    for name in ("rule", "interval_only", "mcnemar_only"):
        total[f"{name}_directional"] = int(table[f"{name}_directional"].sum())
        total[f"{name}_rate"] = total[f"{name}_directional"] / total["splits"]
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    write_csv(table, args.out, provenance({"runs": str(args.runs), "k": args.k, "resamples": RESAMPLES}))
    print(table.to_string(index=False, float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
