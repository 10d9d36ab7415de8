"""Figures (seaborn) from the tables and runs: ``python -m tinlab plots --out-dir results/plots ...``.

* ``accuracy_vs_gflops.png``: val top-1 against GFLOPs per video, marker size = parameters (Table 1), with
  the 95% interval of each top-1 as a vertical bar (``val_top1_lo`` / ``_hi``, when the table has them).
* ``ablation.png``: TIN's groups x reverse offsets x boundary (Table 5): bars at the mean over seeds, the
  95% interval (videos and seeds resampled) as whiskers, each seed as a dot.
* ``offsets.png`` / ``weights.png``: learned offsets per layer and frame weights per frame, one panel
  per number of frames (the TIN paper's Figure 5), from ``tinlab evaluate``'s offsets CSVs.
* ``training_curves.png``: training loss and val top-1 per epoch of every run.
* ``latency.png``: inference and training-step latency per model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ..utils.io import atomic_write
from ..registry import list_models


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _save(fig, path: Path) -> Path:
    """Write atomically (:func:`tinlab.utils.io.atomic_write`): a killed job leaves no half-written figure."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip("."), dpi=130, bbox_inches="tight"))
    plt.close(fig)
    return path


def accuracy_vs_gflops(table1: pd.DataFrame, path: Path) -> Path:
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    data = table1.assign(frames=table1.frames.astype(str) + " frames", params_m=table1.params / 1e6)
    sns.scatterplot(data=data, x="gflops", y="val_top1", hue="model", style="frames", size="params_m",
                    sizes=(60, 260), hue_order=[m for m in list_models() if m in set(data.model)], ax=ax)
    if {"val_top1_lo", "val_top1_hi"} <= set(data) and data.val_top1_lo.notna().any():
        ax.errorbar(data.gflops, data.val_top1, yerr=[data.val_top1 - data.val_top1_lo, data.val_top1_hi - data.val_top1],
                    fmt="none", ecolor="0.35", elinewidth=0.8, capsize=2, zorder=0)
    if "diverged" in data:  # no accuracy: an x on the axis, named, where its cost is
        gone = data[data.diverged.fillna("").astype(str) != ""]
        for _, row in gone.iterrows():
            ax.scatter([row.gflops], [0], marker="x", color="red", zorder=3)
            ax.annotate(f"{row.model} T{row.frames.split()[0]}: diverged", (row.gflops, 0), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color="red")
    ax.set(xlabel="GFLOPs per video (one view)", ylabel="val top-1 (%), 95% interval",
           title=f"{data.dataset.iloc[0]}, {data.backbone.iloc[0]}")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    return _save(fig, path)


def ablation(table5: pd.DataFrame, path: Path) -> Path:
    plt, sns = _pyplot()
    data = table5.assign(variant="G=" + table5.groups.astype(str) + table5.reverse.map({True: " +rev", False: ""}),
                         boundary=table5.boundary.astype(str)).reset_index(drop=True)
    variants, boundaries = list(dict.fromkeys(data.variant)), list(dict.fromkeys(data.boundary))
    width = 0.8 / len(boundaries)
    colors = sns.color_palette(n_colors=len(boundaries))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    has_ci = {"val_top1_lo", "val_top1_hi"} <= set(data) and data.val_top1_lo.notna().any()
    low = []
    for j, (boundary, color) in enumerate(zip(boundaries, colors)):
        rows = data[data.boundary == boundary]
        x = [variants.index(v) - 0.4 + width * (j + 0.5) for v in rows.variant]
        ax.bar(x, rows.val_top1, width=width * 0.95, color=color, label=boundary)
        if has_ci:
            ax.errorbar(x, rows.val_top1, yerr=[rows.val_top1 - rows.val_top1_lo, rows.val_top1_hi - rows.val_top1],
                        fmt="none", ecolor="black", elinewidth=1, capsize=3)
            low += list(rows.val_top1_lo)
        if "val_top1_per_seed" in rows:  # every seed as a dot
            for xi, seeds in zip(x, rows.val_top1_per_seed.astype(str)):
                values = [float(v) for v in seeds.split(";") if v and v not in ("nan", "diverged")]
                ax.scatter([xi] * len(values), values, color="black", s=8, zorder=3)
                low += values
    seeds = int(data.seeds.astype(str).str.split().str.len().max()) if "seeds" in data else 1
    ax.set_xticks(range(len(variants)), variants)
    ax.legend(title="boundary", fontsize=7)
    ax.set(xlabel="offset groups (+ reverse offsets)", ylabel="val top-1 (%)",
           title=f"TIN ablation ({seeds} seed{'s' if seeds > 1 else ''} per bar"
                 + (", whiskers: 95% interval)" if has_ci else ")"))
    lo = max(min(low + list(data.val_top1)) - 10, 0)
    ax.set_ylim(lo, min(max(data.val_top1_hi.max() if has_ci else data.val_top1.max(), data.val_top1.max()) + 5, 100))
    return _save(fig, path)


def offsets_and_weights(offset_csvs: dict[int, Path], out_dir: Path) -> list[Path]:
    """Figure 5: per-layer mean |offset| (per group) and per-frame weights, one panel per T."""
    plt, sns = _pyplot()
    frames = sorted(offset_csvs)
    tables = {t: pd.read_csv(offset_csvs[t]) for t in frames}
    panels = [("offset", "layer_index", "layer", "mean offset (frames)", "learned offsets", "offsets.png"),
              ("weight", "frame", "frame", "weight (mean over layers, groups)", "frame weights", "weights.png")]
    paths = []
    for kind, x, xlabel, ylabel, title, name in panels:
        fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames), 3.2), squeeze=False)
        for ax, t in zip(axes[0], frames):
            d = tables[t][tables[t].kind == kind]
            if kind == "offset":  # one line per offset group
                sns.lineplot(data=d.assign(group=d.group.astype(str)), x=x, y="value", hue="group", marker="o",
                             ax=ax)
            else:  # spread over layers and groups
                sns.lineplot(data=d, x=x, y="value", errorbar=("pi", 50), marker="o", ax=ax)
            ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title}, T = {t}")
        paths.append(_save(fig, out_dir / name))
    return paths


def training_curves(summaries: list[Path], path: Path) -> Path:
    """Train loss and val top-1 per epoch: one colour per model and number of frames, one line per seed."""
    plt, sns = _pyplot()
    rows = []
    for s in summaries:
        summary = json.loads(Path(s).read_text())
        cfg = summary.get("provenance", {}).get("config", {})
        name = f"{cfg['model']['name']} T{cfg['data']['num_segments']}" if cfg else Path(s).parent.name
        for h in summary["history"]:
            rows.append({"run": name, "seed": cfg.get("run", {}).get("seed", 0), "epoch": h["epoch"],
                         "train loss": h["train"]["loss"],
                         "val top-1 (%)": 100 * h["val"]["top1"] if h["val"] else None})
    data = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, col in zip(axes, ["train loss", "val top-1 (%)"]):
        sns.lineplot(data=data.dropna(subset=[col]), x="epoch", y=col, hue="run", units="seed", estimator=None,
                     lw=0.9, marker="o" if col.startswith("val") else None, ms=3, ax=ax, legend=ax is axes[1])
    axes[1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=6, title="one line per seed")
    return _save(fig, path)


def latency(frame: pd.DataFrame, path: Path) -> Path:
    """Median latency per model and mode, one panel per number of frames (never averaged across them)."""
    plt, sns = _pyplot()
    data = frame[frame.kind == "model"]
    frames = sorted(data.frames.unique())
    fig, axes = plt.subplots(1, len(frames), figsize=(6 * len(frames), 3.2), squeeze=False)
    for ax, t in zip(axes[0], frames):
        d = data[data.frames == t]
        sns.barplot(data=d, x="name", y="median_ms", hue="mode", errorbar=None,
                    order=[m for m in list_models() if m in set(d.name)], ax=ax)
        ax.set(xlabel="model", ylabel="median latency (ms)",
               title=f"{d.device_name.iloc[0]}, batch {d.batch.iloc[0]}, {t} frames")
    return _save(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--table1")
    parser.add_argument("--table5")
    parser.add_argument("--latency")
    parser.add_argument("--offsets", nargs="*", default=[], metavar="T=CSV",
                        help="offsets CSVs of TIN runs, e.g. 8=runs/tin_T8/metrics.offsets.csv")
    parser.add_argument("--summaries", nargs="*", default=[], help="train_summary.json files")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if args.table1:
        written.append(accuracy_vs_gflops(pd.read_csv(args.table1), out / "accuracy_vs_gflops.png"))
    if args.table5:
        written.append(ablation(pd.read_csv(args.table5), out / "ablation.png"))
    if args.offsets:
        pairs = dict(item.split("=", 1) for item in args.offsets)
        written += offsets_and_weights({int(t): Path(p) for t, p in pairs.items()}, out)
    if args.summaries:
        written.append(training_curves([Path(s) for s in args.summaries], out / "training_curves.png"))
    if args.latency:
        written.append(latency(pd.read_csv(args.latency), out / "latency.png"))
    for p in written:
        print(f"-> {p}")
    return 0
