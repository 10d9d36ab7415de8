"""Paper-style tables from evaluated runs: ``python -m tinlab report --table table1 ...``.

Every row comes from one metrics JSON written by ``tinlab evaluate``: its provenance holds the full
run config, and its ``cost`` the GFLOPs (one view) and parameters that evaluation counted on the model
it evaluated (reporting measures nothing). Accuracies are percentages, as in the paper.

* ``table1``: model, backbone, frames, input size, GFLOPs/video, params, val top-1/top-5 (+ pair
  accuracy between time-reversed twins, inference latency, dataset), TIN paper Table 1 layout.
* ``table2``: per dataset, TIN paper Table 2 layout.
* ``table5``: TIN ablation: offset groups x reverse offsets, and the boundary mode (Table 5 layout);
  rows trained with several seeds are averaged (mean, standard deviation and every seed's top-1).

Every accuracy comes with its 95% interval (``<column>_lo``, ``<column>_hi``): a percentile bootstrap over
the validation videos (and over the seeds where a row has several), from the per-video predictions that
``tinlab evaluate`` writes next to each metrics JSON (:mod:`tinlab.report.stats`: 10,000 resamples, seed 0).
Metrics without predictions (evaluated by an older tinlab) get empty intervals.

A run that diverged (``tinlab train``/``evaluate --record-divergence``: metrics with ``diverged`` and no
accuracy) keeps its row, with its cost columns: the accuracies, intervals and standard deviation of a row
with any diverged seed are empty, ``diverged`` says which seed went non-finite, when and in what
(``seed 1: diverged at epoch 5 (validation loss)``), and ``val_top1_per_seed`` lists the other seeds'
top-1 with ``diverged`` in place of that seed's. Rows where every seed finished have ``diverged`` empty.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, diverged_label
from ..models import options_key
from ..registry import list_models
from ..utils.io import read_text

TABLES = ("table1", "table2", "table5", "published", "probes")
# Published top-1 (%, one clip, centre crop) of the released checkpoints: (model, dataset, frames) -> (top-1,
# source): from the papers and the official repositories' READMEs.
PUBLISHED_TOP1 = {
    ("tsm", "something-v1", 8): (45.6, "TSM repository README"),
    ("tsm", "something-v1", 16): (47.2, "TSM repository README"),
    ("tin", "something-v1", 8): (45.8, "TIN paper, Table 1"),
    ("tin", "something-v1", 16): (47.0, "TIN paper, Table 1"),
    ("tada", "something-v2", 8): (64.0, "TAdaConv repository README"),
}


def load_run(path: str | Path) -> dict[str, Any]:
    """One metrics JSON -> a flat row (model, options, scale, accuracies, source file)."""
    path = Path(path)
    try:
        m = json.loads(read_text(path))
        cfg, cost = m["provenance"]["config"], m["cost"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a metrics JSON of this tinlab (missing {e}); evaluate the run again") from None
    from ..models import default_op_options

    options = {**default_op_options(cfg["model"]["name"]), **(cfg["model"].get("options") or {})}
    row = {
        "model": cfg["model"]["name"], "backbone": cfg["model"]["backbone"],
        "width_mult": cfg["model"]["width_mult"], "small_stem": cfg["model"]["small_stem"],
        "frames": cfg["data"]["num_segments"], "input_size": cfg["data"]["input_size"],
        "dataset": cfg["data"]["dataset"], "num_classes": len(m["class_names"]),
        "views": m.get("views_per_video", 1),
        "val_top1": _percent(m["top1"]), "val_top5": _percent(m["top5"]),
        "pair_accuracy": 100 * m["twins"]["pair_accuracy"] if m.get("twins") else None,
        "diverged": diverged_label(m["diverged"]) if m.get("diverged") else "",
        "groups": options.get("groups"), "reverse": options.get("reverse"), "boundary": options.get("boundary"),
        "options": options_key(cfg["model"]["name"], cfg["model"].get("options")), "epochs": cfg["optim"]["epochs"],
        "seed": cfg["run"]["seed"], "code_version": m["provenance"].get("code_version"),
        "train_code_version": m.get("train_code_version"), "gflops": cost["gflops"], "params": cost["params"],
        "metrics_file": str(path),
    }
    if not m.get("diverged"):
        row.update(_per_video(path, m["num_videos"]))
    return row


def _percent(fraction: float | None) -> float:
    return np.nan if fraction is None else 100 * fraction


ACCURACIES = {"val_top1": "correct", "val_top5": "top5_correct", "pair_accuracy": "pair_correct"}


def predictions_path(metrics: str | Path) -> Path:
    """``runs/x/metrics.json`` -> ``runs/x/metrics.predictions.csv`` (written by ``tinlab evaluate``)."""
    metrics = Path(metrics)
    return metrics.with_name(metrics.stem + ".predictions.csv")


def read_predictions(metrics: str | Path, num_videos: int | None = None) -> pd.DataFrame | None:
    """The per-video predictions next to a metrics JSON, checked; None when there are none."""
    path = predictions_path(metrics)
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable predictions table ({e}); evaluate the run again") from None
    missing = {"video", "correct", "top5_correct", "pair_correct"} - set(table.columns)
    if missing:
        raise DataError(f"{path}: no column(s) {sorted(missing)}; evaluate the run again")
    if num_videos is not None and len(table) != num_videos:
        raise DataError(f"{path} has {len(table)} videos, its metrics JSON {metrics} says {num_videos}; "
                        f"evaluate the run again")
    return table


def _per_video(path: Path, num_videos: int) -> dict[str, Any]:
    """Per-video correctness arrays for the intervals (private columns, not written to tables)."""
    table = read_predictions(path, num_videos)
    if table is None:
        return {}
    return {"_videos": tuple(table.video), **{f"_{col}": table[col].dropna().to_numpy(bool)
                                              for col in ACCURACIES.values()}}


def add_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """``<accuracy>_lo`` / ``_hi`` (percent) for every accuracy column, from each row's per-video arrays
    (``_correct`` etc.: one array per seed, stacked, for rows over several seeds)."""
    from .stats import bootstrap_interval

    frame = frame.copy()
    for column, source in ACCURACIES.items():
        lo, hi = [], []
        for runs in frame.get(f"_{source}", pd.Series([None] * len(frame), index=frame.index)):
            if runs is None or (isinstance(runs, float) and np.isnan(runs)) or np.size(runs) == 0:
                lo.append(np.nan), hi.append(np.nan)
                continue
            _, a, b = bootstrap_interval(np.atleast_2d(runs))
            lo.append(100 * a), hi.append(100 * b)
        frame[f"{column}_lo"], frame[f"{column}_hi"] = lo, hi
    return frame


def _with_intervals(cols: list[str]) -> list[str]:
    out = []
    for c in cols:
        out.append(c)
        if c in ACCURACIES:
            out += [f"{c}_lo", f"{c}_hi"]
    return out


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by dataset, frames and the registry's model order (tsn, the built-in modules, plug-ins)."""
    key = frame.model.map({m: i for i, m in enumerate(list_models())})
    return frame.assign(_k=key).sort_values(["dataset", "frames", "_k"]).drop(columns="_k")


def _over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: accuracies averaged over its seeds, the sample standard deviation of
    top-1 (NaN for one seed), the seeds and each seed's top-1 (``;``-separated, in seed order)."""
    keys = ["model", "groups", "reverse", "boundary", "options", "frames", "dataset", "backbone", "width_mult",
            "small_stem", "input_size", "num_classes", "views", "epochs"]
    out = []
    for _, g in rows.sort_values("seed").groupby([k for k in keys if k in rows], sort=False, dropna=False):
        if g.seed.duplicated().any():
            raise DataError("one table row has two runs with the same seed: "
                             + " ".join(g.metrics_file[g.seed.duplicated(keep=False)]))
        first = g.iloc[0].to_dict()
        diverged = g.get("diverged", pd.Series("", index=g.index)).fillna("").astype(str)
        failed = diverged != ""
        first.update(val_top1=g.val_top1.mean(), val_top5=g.val_top5.mean(), pair_accuracy=g.pair_accuracy.mean(),
                     val_top1_std=g.val_top1.std(ddof=1),  # NaN for one seed
                     seeds=" ".join(str(int(v)) for v in g.seed),
                     val_top1_per_seed=";".join("diverged" if bad else f"{v:.4g}" for v, bad in zip(g.val_top1, failed)),
                     diverged="; ".join(f"seed {int(s)}: {d}" for s, d in zip(g.seed[failed], diverged[failed])),
                     train_code_version=" ".join(dict.fromkeys(g.get("train_code_version", pd.Series()).dropna()
                                                               .astype(str))),
                     metrics_file=" ".join(g.metrics_file))
        if failed.any():  # no accuracy for a row with a diverged seed: the others alone would flatter it
            first.update(val_top1=np.nan, val_top5=np.nan, pair_accuracy=np.nan, val_top1_std=np.nan)
            first.update({f"_{source}": None for source in ACCURACIES.values()})
        for source in ACCURACIES.values():  # every seed's per-video correctness, stacked (seeds, videos)
            if not failed.any() and f"_{source}" in g and g[f"_{source}"].notna().all():
                first[f"_{source}"] = np.stack(list(g[f"_{source}"]))
        out.append(first)
    return pd.DataFrame(out)


def _latency_of_models(latency: pd.DataFrame) -> pd.DataFrame:
    """Inference latency by (model, options, frames): a row of Table 1 gets the latency of the model it
    trained, options included, or none (a latency file of other options, or of an older tinlab that
    did not record them, leaves the cell empty rather than lending another model's figure)."""
    lat = latency[(latency.kind == "model") & (latency["mode"] == "infer")]
    if "options" not in lat:
        lat = lat.assign(options="{}")
    lat = lat.assign(options=[options_key(m, json.loads(o) if isinstance(o, str) else {})
                              for m, o in zip(lat.name, lat.options)])
    return lat.rename(columns={"name": "model", "median_ms": "latency_ms"})[["model", "options", "frames", "latency_ms"]]


def build_table(kind: str, rows: pd.DataFrame, latency: pd.DataFrame | None = None) -> pd.DataFrame:
    """The columns and row order of ``kind`` (table1 | table2 | table5) from :func:`load_run` rows."""
    if kind == "table1":
        out = _order(_over_seeds(rows))
        if latency is not None:
            out = out.merge(_latency_of_models(latency), on=["model", "options", "frames"], how="left")
        cols = ["model", "backbone", "frames", "input_size", "gflops", "params", "val_top1", "val_top1_std",
                "val_top5", "pair_accuracy", "latency_ms", "seeds", "val_top1_per_seed", "diverged", "dataset",
                "width_mult", "views", "epochs", "train_code_version", "metrics_file"]
    elif kind == "table2":
        out = _order(_over_seeds(rows))
        cols = ["dataset", "model", "frames", "val_top1", "val_top1_std", "val_top5", "pair_accuracy", "seeds",
                "val_top1_per_seed", "diverged", "gflops", "params", "train_code_version", "metrics_file"]
    elif kind == "published":  # published checkpoints evaluated here, next to the published accuracy
        out = _order(rows)
        published = [PUBLISHED_TOP1.get((m, d, f), (None, None)) for m, d, f in zip(out.model, out.dataset, out.frames)]
        out = out.assign(published_top1=[p[0] for p in published], published_source=[p[1] for p in published])
        out["delta_top1"] = out.val_top1 - out.published_top1
        cols = ["model", "backbone", "frames", "input_size", "gflops", "params", "val_top1", "published_top1",
                "delta_top1", "val_top5", "dataset", "views", "published_source", "metrics_file"]
    elif kind == "table5":
        out = _over_seeds(rows[rows.model == "tin"]).sort_values(["boundary", "groups", "reverse"],
                                                                 ascending=[False, True, False])
        cols = ["groups", "reverse", "boundary", "frames", "val_top1", "val_top1_std", "val_top5", "pair_accuracy",
                "seeds", "val_top1_per_seed", "diverged", "params", "gflops", "dataset", "train_code_version",
                "metrics_file"]
    elif kind == "probes":
        return probes_table(rows)
    else:
        raise ValueError(f"unknown table {kind!r}; one of {TABLES}")
    out = add_intervals(out)
    return out[[c for c in _with_intervals(cols) if c in out]].reset_index(drop=True)


PROBE_COLUMNS = ["probe", "model", "frames", "val_top1", "val_top1_lo", "val_top1_hi", "chance", "gain_over_tsn",
                 "gain_over_tsn_lo", "gain_over_tsn_hi", "verdict_vs_tsn", "gain_over_tsm", "gain_over_tsm_lo",
                 "gain_over_tsm_hi", "verdict_vs_tsm", "order_reach", "val_top1_std", "seeds", "val_top1_per_seed",
                 "pair_accuracy", "diverged", "dataset", "epochs", "train_code_version", "metrics_file"]


def probes_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The capability table: one row per model and probe (:data:`tinlab.data.synthetic.PROBES`), top-1 over
    seeds with its two-level interval, chance, and each model against TSN (the no-temporal control) and
    against TSM, from :func:`tinlab.report.compare.compare_table` (Holm's family: one probe's comparisons).
    ``order_reach``: the largest gap g of the order probes at which the model is "better" than TSN (0 if
    none; empty when the table has no order probe): the gaps it learned to relate at the recipe, not how far
    it can see (on 8-frame clips a trained temporal model's features already depend on frames 8 or more
    apart: docs/probes.md)."""
    from ..data.synthetic import DATASETS, PROBE_DATASETS
    from .compare import compare_table

    probe_of = {dataset: probe for probe, dataset in PROBE_DATASETS.items()}
    unknown = sorted(set(rows.dataset) - set(probe_of))
    if unknown:
        raise DataError(f"probes: runs on {unknown}, which are no probe's dataset ({sorted(probe_of.values())})")
    table = add_intervals(_order(_over_seeds(rows)))
    verdicts = pd.concat([compare_table("probes", group) for _, group in table.groupby("dataset", sort=False)],
                         ignore_index=True)
    for ref in ("tsn", "tsm"):
        mine = verdicts[verdicts.reference == ref].set_index(["dataset", "model"])
        for column, source in ((f"gain_over_{ref}", "diff_top1"), (f"gain_over_{ref}_lo", "diff_top1_lo"),
                               (f"gain_over_{ref}_hi", "diff_top1_hi"), (f"verdict_vs_{ref}", "verdict")):
            table[column] = [mine[source].get((d, m)) if (d, m) in mine.index else None
                             for d, m in zip(table.dataset, table.model)]
    table["probe"] = table.dataset.map(probe_of)
    table["chance"] = [100 / len(DATASETS[d].classes) if d in DATASETS else None for d in table.dataset]
    order = [p for p in PROBE_DATASETS if p in set(table.probe)]
    table = table.assign(_p=table.probe.map(order.index)).sort_values(["_p", "frames"], kind="stable").drop(columns="_p")
    gaps = {p: int(p.split("-")[1]) for p in order if p.startswith("order-")}
    if gaps:
        reach = {m: max([gaps[p] for p, v in zip(g.probe, g.verdict_vs_tsn) if p in gaps and v == "better"],
                        default=0) for m, g in table.groupby("model")}
        table["order_reach"] = table.model.map(reach)
    return table[[c for c in PROBE_COLUMNS if c in table]].reset_index(drop=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, choices=TABLES)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files of evaluated runs")
    parser.add_argument("--latency", help="latency CSV (tinlab latency) for table1's latency column")
    parser.add_argument("--out", required=True, help="CSV to write")


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_csv
    from ..utils.provenance import provenance

    rows = pd.DataFrame([load_run(p) for p in args.metrics])
    latency = pd.read_csv(args.latency) if args.latency else None
    table = build_table(args.table, rows, latency)
    write_csv(table, args.out, provenance({"table": args.table, "metrics": args.metrics,
                                           "latency": args.latency}))
    print(table.drop(columns=["metrics_file"]).to_string(index=False, float_format="%.2f"))
    print(f"-> {args.out}")
    return 0
