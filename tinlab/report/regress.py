"""Accuracy and cost regression check: ``python -m tinlab regress --results results --reference
results/reference``.

For every table both folders have (``table1/2/5.csv``, ``complexity.csv``), rows are matched on
their keys and compared:

* ``params``: exactly; ``gflops``: to the 6 significant digits the CSVs keep (a change in either
  means the architecture changed);
* ``val_top1`` / ``val_top5``: within ``--tolerance`` percentage points (default 2.0; seeds are fixed
  and CPU runs are bit-reproducible on one machine, the tolerance absorbs other CPUs and BLAS builds);
* a row of the reference missing from the fresh results is a regression.

``equivalence.csv`` of the fresh results must have every case within its bounds. A side-by-side table
of everything that moved is printed; the exit code is 1 on any regression, 0 otherwise.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

KEYS = {
    "table1": ["model", "backbone", "frames", "input_size", "dataset"],
    "table2": ["dataset", "model", "frames"],
    "table5": ["groups", "reverse", "boundary", "frames", "dataset", "seeds"],  # a mean over other seeds: no match
    "complexity": ["model", "backbone", "frames", "num_classes", "input_size"],
}
EXACT = ["params"]
SIGNIFICANT = ["gflops"]
ACCURACY = ["val_top1", "val_top5"]


def _same_6g(a: float, b: float) -> bool:
    return f"{a:.6g}" == f"{b:.6g}" or math.isclose(a, b, rel_tol=5e-6)


def compare_table(name: str, fresh: pd.DataFrame, reference: pd.DataFrame, tolerance: float) -> list[dict]:
    """One record per compared value that moved (status ok/REGRESSION) or row that went missing."""
    keys = [k for k in KEYS[name] if k in reference and k in fresh]
    if "seeds" in keys:  # "0" reads as an integer, "0 1 2" as text: compare them as text
        fresh, reference = (t.astype({"seeds": str}) for t in (fresh, reference))
    merged = reference.merge(fresh, on=keys, how="left", suffixes=("_ref", "_new"), indicator=True)
    out = []
    for _, row in merged.iterrows():
        where = f"{name}: " + ", ".join(f"{k}={row[k]}" for k in keys)
        if row["_merge"] == "left_only":
            out.append({"where": where, "metric": "row", "reference": "present", "fresh": "missing",
                        "delta": None, "status": "REGRESSION"})
            continue
        for col in EXACT + SIGNIFICANT + ACCURACY:
            if f"{col}_ref" not in row or pd.isna(row[f"{col}_ref"]):
                continue
            ref, new = float(row[f"{col}_ref"]), float(row[f"{col}_new"])
            if col in EXACT:
                bad = ref != new
            elif col in SIGNIFICANT:
                bad = not _same_6g(ref, new)
            else:
                bad = not new >= ref - tolerance  # only a drop is a regression; a missing value (NaN) is one
            if ref != new or bad:
                out.append({"where": where, "metric": col, "reference": ref, "fresh": new, "delta": new - ref,
                            "status": "REGRESSION" if bad else "ok"})
    return out


def check_equivalence(path: Path) -> list[dict]:
    frame = pd.read_csv(path)
    failed = frame[~frame["passed"].astype(bool)]
    return [{"where": f"equivalence: {r.kind} T={r.num_segments} G={r.groups} reverse={r.reverse} "
                      f"{r.boundary} {r.dtype}", "metric": "passed", "reference": True, "fresh": False,
             "delta": None, "status": "REGRESSION"} for r in failed.itertuples()]


def regress(results: Path, reference: Path, tolerance: float = 2.0) -> pd.DataFrame:
    """Everything that moved between ``reference`` and ``results`` (see module doc)."""
    records, compared = [], 0
    for name in KEYS:
        ref, new = reference / f"{name}.csv", results / f"{name}.csv"
        if ref.is_file():
            if not new.is_file():
                records.append({"where": name, "metric": "file", "reference": str(ref), "fresh": "missing",
                                "delta": None, "status": "REGRESSION"})
                continue
            records += compare_table(name, pd.read_csv(new), pd.read_csv(ref), tolerance)
            compared += 1
    if (results / "equivalence.csv").is_file():
        records += check_equivalence(results / "equivalence.csv")
        compared += 1
    if not compared:
        raise FileNotFoundError(f"nothing to compare: no table of {sorted(KEYS)} or equivalence.csv in both "
                                f"{results} and {reference}")
    return pd.DataFrame(records, columns=["where", "metric", "reference", "fresh", "delta", "status"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="folder with fresh tables")
    parser.add_argument("--reference", default="results/reference", help="folder with reference tables")
    parser.add_argument("--tolerance", type=float, default=2.0,
                        help="allowed drop of val top-1/top-5, in percentage points")


def run(args: argparse.Namespace) -> int:
    moved = regress(Path(args.results), Path(args.reference), args.tolerance)
    if moved.empty:
        print(f"tinlab regress: nothing moved ({args.results} vs {args.reference})")
        return 0
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(moved.to_string(index=False))
    bad = int((moved.status == "REGRESSION").sum())
    print(f"tinlab regress: {bad} regression(s), {len(moved) - bad} change(s) within tolerance "
          f"(tolerance {args.tolerance} points)")
    return 1 if bad else 0
