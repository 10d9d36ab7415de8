"""Accuracy and cost regression check: ``python -m tinlab regress --results results --reference
results/reference [--require table1 ...]``.

For every table both folders have (``table1/2/5.csv``, ``probes.csv``, ``complexity.csv``), rows are matched on
their keys and compared:

* ``params``: exactly; ``gflops``: to the 6 significant digits the CSVs keep (a change in either
  means the architecture changed);
* ``val_top1`` / ``val_top5`` / ``pair_accuracy``: within a tolerance in percentage points, on both
  sides by default: a drop is a regression, and so is a rise beyond the tolerance (a rise that large
  on a fixed-seed run means something else changed: labels leaking, a different split, a broken
  baseline). ``--one-sided`` accepts rises. The tolerance is ``--tolerance``, else the reference
  folder's ``tolerances.json``, else 2 points. In ``tolerances.json`` a metric's entry is a number of
  points, or ``{"sd": s, "z": z}``: ``s`` is the seed-to-seed standard deviation of one training run
  (measured by ``bench/seed_spread.py``), and a row that averages k seeds (its ``seeds`` column) gets
  ``z * sqrt(2 / k) * s``, rounded up to half a point: the spread of the difference of two such means.
  ``s`` is the spread pooled over the table's rows, or the row's own (``"sd_by_row": {"tin_T16": ...}``)
  where that is larger: a noisy row gets its own width, a quiet one never less than the pooled;
* a row of the reference missing from the fresh table, or a column it compares, is a regression; a fresh
  row the reference lacks is listed as "new" (nothing to compare it with; not a regression);
* a row that diverged (the tables' ``diverged`` column: a seed went non-finite, the row has no accuracy):
  diverged on both sides is "ok" (listed, not compared further), diverging now where the reference
  finished is a regression, and finishing now where the reference diverged is a RISE (``--one-sided``: ok).

A reference table that the fresh folder lacks is listed as "not produced" (not a regression: the
user built fewer targets), unless it is named in ``--require``. ``equivalence.csv`` of the fresh
results must have every case within its bounds. Exit code 1 on any regression, 0 otherwise, 2 on
unreadable input.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, UserError

KEYS = {  # "seeds": a mean over other seeds is another quantity, not matched
    "table1": ["model", "backbone", "frames", "input_size", "dataset", "seeds"],
    "table2": ["dataset", "model", "frames", "seeds"],
    "table5": ["groups", "reverse", "boundary", "frames", "dataset", "seeds"],  # a mean over other seeds: no match
    "complexity": ["model", "backbone", "frames", "num_classes", "input_size"],
    "probes": ["probe", "model", "frames", "dataset", "seeds"],  # the capability table: top-1 per probe
}
EXACT = ["params"]
SIGNIFICANT = ["gflops"]
ACCURACY = ["val_top1", "val_top5", "pair_accuracy"]
DEFAULT_TOLERANCE = 2.0
COLUMNS = ["where", "metric", "reference", "fresh", "delta", "tolerance", "status"]


def read_table(path: Path) -> pd.DataFrame:
    """A result CSV; empty or unreadable is a :class:`~tinlab.errors.DataError` naming the file."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: not a readable results table ({' '.join(str(e).split())})") from None
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")
    return frame


def tolerances(reference: Path, override: float | None) -> dict[str, Any]:
    """The tolerance table: ``--tolerance`` for everything, else ``reference/tolerances.json``, else 2."""
    if override is not None:
        return {"default": override}
    path = reference / "tolerances.json"
    if not path.is_file():
        return {"default": DEFAULT_TOLERANCE}
    try:
        table = json.loads(path.read_text())
        float(table.get("default", DEFAULT_TOLERANCE))
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: not a tolerance table ({e})") from None
    return table


def _tolerance(table: dict[str, Any], name: str, metric: str, seeds: int = 1, row: str | None = None) -> float:
    """The tolerance of ``metric`` in table ``name`` for rows that average ``seeds`` runs; ``row``
    (``"<model>_T<frames>"``) picks the row's own standard deviation where ``sd_by_row`` has a larger one."""
    value = table.get(name, {}).get(metric, table.get("default", DEFAULT_TOLERANCE))
    if isinstance(value, dict):
        try:
            sd, z = float(value["sd"]), float(value.get("z", 3.0))
            sd = max(sd, float(value.get("sd_by_row", {}).get(row, 0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"tolerances.json: {name}.{metric} = {value!r} is not a tolerance ({e})") from None
        return math.ceil(2 * z * math.sqrt(2 / max(seeds, 1)) * sd) / 2
    return float(value)


def _record(where: str, metric: str, ref: Any, new: Any, status: str, tol: float | None = None) -> dict[str, Any]:
    delta = new - ref if isinstance(ref, float) and isinstance(new, float) else None
    return {"where": where, "metric": metric, "reference": ref, "fresh": new, "delta": delta, "tolerance": tol,
            "status": status}


def _status(col: str, ref: float, new: float, tol: float, two_sided: bool) -> str | None:
    """None when nothing moved, else ok / REGRESSION / RISE."""
    if col in EXACT:
        return None if ref == new else "REGRESSION"
    if col in SIGNIFICANT:  # the CSVs keep 6 significant digits: one unit in the last of them is rounding
        return None if f"{ref:.6g}" == f"{new:.6g}" or math.isclose(ref, new, rel_tol=1e-5) else "REGRESSION"
    if math.isnan(ref) and math.isnan(new):
        return None
    if ref == new:
        return None
    if not new >= ref - tol:  # a drop, or a missing (NaN) value
        return "REGRESSION"
    return "RISE" if two_sided and new > ref + tol else "ok"


def _diverged_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any, name: str, side: str, where: str, col: str) -> float:
    """A cell as a float; text in a numeric column is a DataError naming the table, side, row and column."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}.csv ({side}), row {where.split(': ', 1)[-1]}: column {col} = {value!r} is not a "
                        f"number") from None


def _divergence(row: pd.Series, two_sided: bool) -> tuple[str, str, str] | None:
    """(reference, fresh, status) when a row diverged on either side (the tables' ``diverged`` column):
    diverged in both is "ok" (both are results; the accuracies are empty on both sides), a fresh
    divergence is a REGRESSION, and a reference divergence that now finishes is a RISE (two-sided: the
    reference must be re-recorded) or "ok" (one-sided). None when neither side diverged."""
    ref, new = _diverged_text(row.get("diverged_ref")), _diverged_text(row.get("diverged_new"))
    if not ref and not new:
        return None
    if ref and new:
        return ref, new, "ok"
    if new:
        return "finished", new, "REGRESSION"
    return ref, "finished", "RISE" if two_sided else "ok"


def compare_table(name: str, fresh: pd.DataFrame, reference: pd.DataFrame, tol: dict[str, Any],
                  two_sided: bool = True) -> list[dict[str, Any]]:
    """One record per compared value that moved, or per row or column that went missing."""
    keys = [k for k in KEYS[name] if k in reference]
    lacking = [c for c in keys + [c for c in EXACT + SIGNIFICANT + ACCURACY if c in reference] if c not in fresh]
    if lacking:  # without its key columns a merge would cross-join; without a value nothing is compared
        return [_record(name, c, "column", "missing", "REGRESSION") for c in lacking]
    if "seeds" in keys:  # "0" reads as an integer, "0 1 2" as text: compare them as text
        fresh, reference = (t.astype({"seeds": str}) for t in (fresh, reference))
    fresh, reference = (t if "diverged" in t else t.assign(diverged="") for t in (fresh, reference))
    if fresh.duplicated(keys).any():
        raise DataError(f"{name}: the fresh table has several rows per {keys}; cannot match them")
    merged = reference.merge(fresh, on=keys, how="outer", suffixes=("_ref", "_new"), indicator=True)
    out = []
    for _, row in merged.iterrows():
        where = f"{name}: " + ", ".join(f"{k}={row[k]}" for k in keys)
        if row["_merge"] == "left_only":
            out.append(_record(where, "row", "present", "missing", "REGRESSION"))
            continue
        if row["_merge"] == "right_only":  # not in the reference: listed, nothing to compare it with
            out.append(_record(where, "row", "absent", "present", "new"))
            continue
        gone = _divergence(row, two_sided)
        if gone is not None:
            out.append(_record(where, "diverged", *gone))
        for col in EXACT + SIGNIFICANT + ACCURACY:
            if f"{col}_ref" not in row or (col not in ACCURACY and pd.isna(row[f"{col}_ref"])):
                continue
            if gone is not None and col in ACCURACY:  # a row that diverged has no accuracy to compare
                continue
            ref, new = _number(row[f"{col}_ref"], name, "reference", where, col), \
                _number(row[f"{col}_new"], name, "fresh", where, col)
            seeds = len(str(row["seeds"]).split()) if "seeds" in row else 1
            label = f"{row['model']}_T{row['frames']}" if "model" in row and "frames" in row else None
            t = _tolerance(tol, name, col, seeds, label) if col in ACCURACY else None
            status = _status(col, ref, new, t or 0.0, two_sided)
            if status is not None:
                out.append(_record(where, col, ref, new, status, t))
    if len(merged) and not (merged["_merge"] == "both").any() and len(fresh) and len(reference):
        # Nothing in common: one line saying what differs, not a "missing" line per reference row.
        return [_record(name, "rows (none matches: another profile or experiment?)", _describe(reference, keys),
                        _describe(fresh, keys), "REGRESSION")]
    return out


def _describe(frame: pd.DataFrame, keys: list[str]) -> str:
    """The values a table's key columns take, e.g. ``frames=8/16; input_size=32; seeds=0 1 2``."""
    parts = []
    for k in keys:
        if k == "model":
            continue
        values = sorted(dict.fromkeys(frame[k].astype(str)))
        parts.append(f"{k}={'/'.join(values)}")
    return "; ".join(parts)


def check_equivalence(path: Path) -> list[dict[str, Any]]:
    frame = read_table(path)
    failed = frame[~frame["passed"].astype(bool)]
    return [_record(f"equivalence: {r.kind} T={r.num_segments} G={r.groups} reverse={r.reverse} {r.boundary} "
                    f"{r.dtype}", "passed", True, False, "REGRESSION") for r in failed.itertuples()]


def regress(results: Path, reference: Path, tolerance: float | None = None, require: tuple[str, ...] = (),
            two_sided: bool = True) -> pd.DataFrame:
    """Everything that moved between ``reference`` and ``results`` (module doc), plus one
    ``not produced`` row per reference table the results lack."""
    for folder, what in ((results, "results"), (reference, "reference")):
        if not folder.is_dir():
            raise UserError(f"--{what} {folder} is not a folder")
    unknown = sorted(set(require) - set(KEYS) - {"equivalence"})
    if unknown:
        raise UserError(f"--require {' '.join(unknown)}: not a table (one of {sorted(KEYS)} or equivalence)")
    tol, records, compared = tolerances(reference, tolerance), [], 0
    for name in KEYS:
        ref, new = reference / f"{name}.csv", results / f"{name}.csv"
        if name in require and not ref.is_file():
            raise UserError(f"--require {name}: the reference {reference} has no {ref.name}")
        if ref.is_file() and new.is_file():
            records += compare_table(name, read_table(new), read_table(ref), tol, two_sided)
            compared += 1
        elif ref.is_file():
            records.append(_record(name, "file", str(ref), "missing",
                                   "REGRESSION" if name in require else "not produced"))
    if (results / "equivalence.csv").is_file():
        records += check_equivalence(results / "equivalence.csv")
        compared += 1
    elif "equivalence" in require:
        records.append(_record("equivalence", "file", "required", "missing", "REGRESSION"))
    if not compared and not require:
        raise UserError(f"nothing to compare: no table of {sorted(KEYS)} or equivalence.csv in both "
                        f"{results} and {reference}")
    return pd.DataFrame(records, columns=COLUMNS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="folder with fresh tables")
    parser.add_argument("--reference", default="results/reference", help="folder with reference tables")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="allowed change of val top-1/top-5/pair accuracy, in percentage points "
                             "(default: the reference's tolerances.json, else 2)")
    parser.add_argument("--require", nargs="+", default=[], metavar="TABLE",
                        help="tables that must be produced and compared (e.g. table1 equivalence)")
    parser.add_argument("--one-sided", action="store_true", help="accept accuracy rises of any size")


def run(args: argparse.Namespace) -> int:
    moved = regress(Path(args.results), Path(args.reference), args.tolerance, tuple(args.require),
                    two_sided=not args.one_sided)
    absent = moved[moved.status == "not produced"]
    new = moved[moved.status == "new"]
    moved = moved[~moved.status.isin(["not produced", "new"])]
    bad = int(moved.status.isin(["REGRESSION", "RISE"]).sum())
    if not moved.empty:
        with pd.option_context("display.width", 200, "display.max_colwidth", 90):
            print(moved.to_string(index=False))
    if not absent.empty:
        print("not produced (not compared): " + ", ".join(absent["where"]))
    if not new.empty:
        print("new rows, not in the reference (not compared): " + "; ".join(new["where"]))
    # a row that diverged in both, the same way, is listed (it has no accuracy to compare) but has not moved
    still = int(((moved.metric == "diverged") & (moved.reference == moved.fresh)).sum())
    if moved.empty:
        print(f"tinlab regress: nothing moved ({args.results} vs {args.reference})")
    else:
        print(f"tinlab regress: {bad} regression(s), {len(moved) - bad - still} change(s) within tolerance"
              + (f", {still} row(s) diverged as in the reference" if still else ""))
    return 1 if bad else 0
