"""Figures (seaborn) from the tables and runs: ``python -m tinlab plots --out-dir results/plots ...``.

Every figure is a PNG with a PDF and an SVG beside it, and every model has one colour and marker in all
of them (:func:`model_style`, by registry order).

* ``accuracy_vs_gflops.png``: val top-1 against GFLOPs per video (Table 1), with the 95% interval of
  each top-1 as a vertical bar (``val_top1_lo`` / ``_hi``, when the table has them).
* ``ablation.png``: TIN's groups x reverse offsets x boundary (Table 5): bars at the mean over seeds, the
  95% interval (videos and seeds resampled) as whiskers, each seed as a dot.
* ``offsets.png`` / ``weights.png``: learned offsets per layer and frame weights per frame, one panel
  per number of frames (the TIN paper's Figure 5), from ``tinlab evaluate``'s offsets CSVs.
* ``training_curves.png``: training loss and val top-1 per epoch of every run.
* ``latency.png``: inference and training-step latency per model, with the interquartile range.
* ``probes.png``: the capability map of the temporal probes (gain over TSN per model and probe, verdicts).
"""
from __future__ import annotations

import argparse
import json
import re
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
    plt.rcParams.update({"svg.hashsalt": "tinlab", "pdf.fonttype": 42, "svg.fonttype": "none"})
    return plt, sns


VECTOR = ("pdf", "svg")  # written beside every PNG
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">", "p")


def model_style(name: str) -> dict[str, object]:
    """The one colour and marker of a model in every figure, fixed by its place in the registry (so TSM
    is the same colour in the accuracy, curves and latency plots, and a plug-in gets its own)."""
    import seaborn as sns

    models = list_models()
    i = models.index(name) if name in models else len(models)
    palette = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)
    return {"color": palette[i % len(palette)], "marker": MARKERS[i % len(MARKERS)]}


def _ordered(models) -> list[str]:
    present = set(models)
    return [m for m in list_models() if m in present] + sorted(present - set(list_models()))


def _save(fig, path: Path) -> Path:
    """Write the PNG and its vector copies (PDF, SVG) atomically (:func:`tinlab.utils.io.atomic_write`):
    a killed job leaves no half-written figure. Dates are left out, so equal inputs give equal files."""
    import matplotlib.pyplot as plt

    for fmt in ("png", *VECTOR):
        meta = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
        atomic_write(path.with_suffix(f".{fmt}"), lambda f, fmt=fmt, meta=meta: fig.savefig(
            f, format=fmt, dpi=200, bbox_inches="tight", metadata=meta))
    plt.close(fig)
    return path


def _spread_equal_x(xs: list[float], spacing_pt: float = 9.0) -> list[float]:
    """Horizontal offsets (points) that place markers at (nearly) equal x side by side instead of on top
    of each other: points within 1% of the x range form a cluster, spread symmetrically around it."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    span = (max(xs) - min(xs)) or 1.0
    offsets, cluster = [0.0] * len(xs), []
    for i in order + [None]:
        if i is not None and cluster and xs[i] - xs[cluster[0]] <= 0.01 * span:
            cluster.append(i)
            continue
        for k, j in enumerate(cluster):
            offsets[j] = (k - (len(cluster) - 1) / 2) * spacing_pt
        cluster = [i] if i is not None else []
    return offsets


def accuracy_vs_gflops(table1: pd.DataFrame, path: Path) -> Path:
    """Top-1 (mean over seeds, 95% interval over videos and seeds) against GFLOPs, one colour and marker
    per model, filled for the first number of frames and open for the next; models of equal GFLOPs are
    drawn side by side (an offset of a few points, said in the caption); a diverged row is a red x at
    its cost on the axis."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    plt, _ = _pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    data = table1.reset_index(drop=True)
    frames = sorted(data.frames.unique())
    fills = {t: k == 0 for k, t in enumerate(frames)}
    diverged = (data.diverged.fillna("").astype(str) != "") if "diverged" in data else pd.Series(False, index=data.index)
    ok = data[~diverged & data.val_top1.notna()]
    has_ci = {"val_top1_lo", "val_top1_hi"} <= set(ok) and ok.val_top1_lo.notna().any()
    shift = _spread_equal_x(list(ok.gflops)) if len(ok) else []
    for dx, (_, row) in zip(shift, ok.iterrows()):
        style = model_style(row.model)
        where = offset_copy(ax.transData, fig=fig, x=dx, y=0, units="points")
        if has_ci and pd.notna(row.val_top1_lo):
            ax.errorbar([row.gflops], [row.val_top1], yerr=[[row.val_top1 - row.val_top1_lo],
                                                             [row.val_top1_hi - row.val_top1]],
                        fmt="none", ecolor=style["color"], elinewidth=1, capsize=2, transform=where, zorder=2)
        ax.plot([row.gflops], [row.val_top1], linestyle="none", marker=style["marker"], ms=8, mew=1.5,
                color=style["color"], mfc=style["color"] if fills[row.frames] else "white", transform=where, zorder=3)
    # drawn through offset transforms, the points do not widen the axes themselves
    bounds = [(x, y) for x, y in zip(ok.gflops, ok.val_top1)]
    if has_ci:
        bounds += [(x, y) for x, y in zip(ok.gflops, ok.val_top1_lo) if pd.notna(y)]
        bounds += [(x, y) for x, y in zip(ok.gflops, ok.val_top1_hi) if pd.notna(y)]
    if bounds:
        ax.update_datalim(bounds)
        ax.autoscale_view()
    for _, row in data[diverged].iterrows():
        ax.plot([row.gflops], [0], linestyle="none", marker="x", ms=8, mew=2, color="red", zorder=3)
    handles = [Line2D([], [], linestyle="none", marker=model_style(m)["marker"], color=model_style(m)["color"], ms=7,
                      label=m) for m in _ordered(data.model)]
    handles += [Line2D([], [], linestyle="none", marker="o", ms=7, color="0.3", mfc="0.3" if fills[t] else "white",
                       label=f"{t} frames") for t in frames]
    if diverged.any():
        names = ", ".join(f"{r.model} T{r.frames}" for _, r in data[diverged].iterrows())
        handles.append(Line2D([], [], linestyle="none", marker="x", color="red", mew=2, label=f"diverged: {names}"))
    ax.legend(handles=handles, bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, frameon=False)
    seeds = int(data.seeds.astype(str).str.split().str.len().max()) if "seeds" in data else 1
    ax.set(xlabel="GFLOPs per video (one view; points of equal GFLOPs drawn side by side)",
           ylabel="val top-1 (%)" + (", 95% interval" if has_ci else ""),
           title=f"{data.dataset.iloc[0]}, {data.backbone.iloc[0]}: mean of {seeds} seed{'s' * (seeds > 1)}")
    ax.margins(x=0.08)
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
    """Figure 5: per-layer mean offset (one line per group) and per-frame weights, one panel per T. The
    weights' band is the middle 50% of their values over layers and groups (a line per layer would
    hide the mean)."""
    from matplotlib.ticker import MaxNLocator

    plt, sns = _pyplot()
    frames = sorted(offset_csvs)
    tables = {t: pd.read_csv(offset_csvs[t]) for t in frames}
    panels = [("offset", "layer_index", "TIN layer (input to output)", "mean offset (frames)", "learned offsets",
               "offsets.png"),
              ("weight", "frame", "frame", "weight: mean, band = middle 50%\nover layers and groups", "frame weights",
               "weights.png")]
    paths = []
    for kind, x, xlabel, ylabel, title, name in panels:
        fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames), 3.2), squeeze=False)
        for ax, t in zip(axes[0], frames):
            d = tables[t][tables[t].kind == kind]
            if kind == "offset":  # one line per offset group
                sns.lineplot(data=d.assign(group=d.group.astype(str)), x=x, y="value", hue="group", marker="o",
                             ax=ax)
                ax.axhline(0, color="0.5", lw=0.8)
            else:
                sns.lineplot(data=d, x=x, y="value", errorbar=("pi", 50), marker="o", ax=ax,
                             color=model_style("tin")["color"])
                ax.axhline(1, color="0.5", lw=0.8, ls=":")  # the weight at initialisation
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title}, T = {t}")
        paths.append(_save(fig, out_dir / name))
    return paths


def training_curves(summaries: list[Path], path: Path) -> Path:
    """Train loss and val top-1 per epoch: one colour per model (as in every figure), one line style per
    number of frames, one line per seed; every epoch is a marker, so a one-epoch run is a point."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt, _ = _pyplot()
    rows = []
    for s in summaries:
        summary = json.loads(Path(s).read_text())
        cfg = summary.get("provenance", {}).get("config", {})
        model = cfg["model"]["name"] if cfg else Path(s).parent.name
        for h in summary["history"]:
            rows.append({"model": model, "frames": cfg.get("data", {}).get("num_segments", 0),
                         "seed": cfg.get("run", {}).get("seed", 0), "epoch": h["epoch"],
                         "train loss": h["train"]["loss"],
                         "val top-1 (%)": 100 * h["val"]["top1"] if h["val"] else None})
    data = pd.DataFrame(rows)
    frames = sorted(data.frames.unique())
    dashes = dict(zip(frames, ["-", "--", ":", "-."] * 4))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for ax, col in zip(axes, ["train loss", "val top-1 (%)"]):
        for (model, t, seed), g in data.dropna(subset=[col]).groupby(["model", "frames", "seed"]):
            style = model_style(model)
            ax.plot(g.epoch, g[col], color=style["color"], ls=dashes[t], lw=0.9, marker=style["marker"], ms=3,
                    alpha=0.85)
        ax.set(xlabel="epoch", ylabel=col, xlim=(0.5, max(data.epoch.max(), 1) + 0.5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    handles = [Line2D([], [], color=model_style(m)["color"], marker=model_style(m)["marker"], ms=4, label=m)
               for m in _ordered(data.model)]
    handles += [Line2D([], [], color="0.3", ls=dashes[t], label=f"{t} frames") for t in frames]
    seeds = data.groupby(["model", "frames"]).seed.nunique().max() if len(data) else 0
    axes[1].legend(handles=handles, bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, frameon=False,
                   title=f"one line per seed ({seeds})", title_fontsize=7)
    return _save(fig, path)


def latency(frame: pd.DataFrame, path: Path) -> Path:
    """Median latency per model, one panel per mode (inference, training step) and number of frames,
    never averaged across them; whiskers: the interquartile range of the timed rounds (the 10th-90th
    percentile range for a file that has no quartiles)."""
    plt, _ = _pyplot()
    data = frame[frame.kind == "model"]
    frames, modes = sorted(data.frames.unique()), [m for m in ("infer", "train") if m in set(data["mode"])]
    quartiles = {"q1_ms", "q3_ms"} <= set(data)
    lo, hi = ("q1_ms", "q3_ms") if quartiles else ("p10_ms", "p90_ms")
    fig, axes = plt.subplots(len(modes), len(frames), figsize=(4.2 * len(frames), 2.8 * len(modes)), squeeze=False)
    for r, mode in enumerate(modes):
        for c, t in enumerate(frames):
            ax, d = axes[r][c], data[(data.frames == t) & (data["mode"] == mode)].set_index("name")
            names = _ordered(d.index)
            d = d.loc[names]
            ax.bar(range(len(names)), d.median_ms, color=[model_style(m)["color"] for m in names])
            if {lo, hi} <= set(d):
                ax.errorbar(range(len(names)), d.median_ms, yerr=[d.median_ms - d[lo], d[hi] - d.median_ms],
                            fmt="none", ecolor="black", elinewidth=1, capsize=3)
            ax.set_xticks(range(len(names)), names, rotation=30)
            ax.set(ylabel="ms", title=f"{'inference' if mode == 'infer' else 'training step'}, {t} frames")
            if r == 0 and c == 0:
                threads = int(d.threads.iloc[0])
                device = str(d.device_name.iloc[0]).split(" (")[0]  # older files: "(1 threads)" in the name
                fig.suptitle(f"median latency, whiskers {'IQR' if quartiles else '10th-90th percentile'} of "
                             f"{int(d.samples.iloc[0])} rounds: {device}, batch {int(d.batch.iloc[0])}"
                             + ("" if str(d["device"].iloc[0]).startswith("cuda") else
                                f", {threads} thread{'s' * (threads != 1)}"), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _per_seed(value) -> str:
    """``val_top1_per_seed`` ("55.62;100;100", "diverged;100;100") as "56 · 100 · 100" / "div. · 100 · 100"."""
    parts = [] if pd.isna(value) else str(value).split(";")
    return " · ".join("div." if p == "diverged" else f"{float(p):.0f}" for p in parts)


def probe_cells(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The text of every cell of the capability map, keyed (model, probe): the gain over TSN with its
    verdict mark, the model's own top-1, and each seed's top-1 (so a probe that some seeds learn and
    others do not shows as such, not as a middling mean). TSN's row is the control: its top-1 only. A
    row without a gain says which seeds diverged, or "no verdict" (the table's ``verdict_vs_tsn`` says why)."""
    cells = {}
    for row in table.itertuples(index=False):
        seeds = _per_seed(getattr(row, "val_top1_per_seed", float("nan")))
        if row.model == "tsn":
            text = "control" + ("" if pd.isna(row.val_top1) else f"\n({row.val_top1:.0f}%)")
        elif pd.isna(row.gain_over_tsn):
            failed = re.findall(r"seed (\d+):", str(getattr(row, "diverged", "") or ""))
            text = (f"seed{'s' * (len(failed) > 1)} {', '.join(failed)} diverged" if failed
                    else "no verdict")
        else:
            mark = {"better": " +", "worse": " −"}.get(str(row.verdict_vs_tsn), "")
            text = f"{row.gain_over_tsn:+.0f}{mark}\n({row.val_top1:.0f}%)"
        cells[(row.model, row.probe)] = text + (f"\n{seeds}" if seeds else "")
    return cells


def probes(table: pd.DataFrame, path: Path) -> Path:
    """The capability map: rows models (TSN, the control, first), columns probes, each cell the model's
    top-1 gain over TSN on that probe (points; colour centred on 0), marked with its verdict: "+" better
    than TSN, "−" worse, no mark when not distinguishable; below it the model's top-1 and each seed's
    (:func:`probe_cells`). Row labels carry the measured order reach; chance levels, seeds and the rule
    are in the axis labels and the title."""
    import numpy as np

    plt, _ = _pyplot()
    probes_ = list(dict.fromkeys(table.probe))
    models = _ordered(table.model)
    gain = table.pivot_table(index="model", columns="probe", values="gain_over_tsn", aggfunc="first")
    gain = gain.reindex(index=models, columns=probes_)
    if "tsn" in models:
        gain.loc["tsn"] = 0.0  # the control against itself
    cells = probe_cells(table)
    limit = max(float(np.nanmax(np.abs(gain.to_numpy(dtype=float)))) if gain.notna().any().any() else 1.0, 1.0)
    fig, ax = plt.subplots(figsize=(1.15 * len(probes_) + 2.6, 0.75 * len(models) + 1.9))
    image = ax.imshow(gain.to_numpy(dtype=float), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i, m in enumerate(models):
        for j, p in enumerate(probes_):
            text, value = cells.get((m, p), ""), gain.loc[m, p]
            dark = not pd.isna(value) and abs(value) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5,
                    color="white" if dark else ("black" if not pd.isna(value) else "0.35"))
    chance = table.drop_duplicates("probe").set_index("probe").chance
    reach = table.drop_duplicates("model").set_index("model").order_reach.to_dict() if "order_reach" in table else {}
    labels = [f"{m}\norder reach {int(reach[m])}" if m != "tsn" and not pd.isna(reach.get(m, float("nan"))) else m
              for m in models]
    ax.set_xticks(range(len(probes_)), [f"{p}\n(chance {chance[p]:.0f}%)" for p in probes_], fontsize=7)
    ax.set_yticks(range(len(models)), labels, fontsize=7.5)
    ax.grid(False)
    seeds = int(table.seeds.astype(str).str.split().str.len().max()) if "seeds" in table else 1
    fig.colorbar(image, ax=ax, label="top-1 gain over TSN (points)", shrink=0.8)
    ax.set_title(f"What each module can see: gain over TSN; below it the model's top-1 and each seed's "
                 f"({seeds} seed{'s' * (seeds > 1)})\n+ / −: better / worse than TSN (Holm-adjusted over the "
                 f"probe's comparisons); no mark: not distinguishable. Order reach: the largest gap at which "
                 f"the model is better than TSN", fontsize=7.5)
    fig.tight_layout()
    return _save(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--table1")
    parser.add_argument("--table5")
    parser.add_argument("--latency")
    parser.add_argument("--offsets", nargs="*", default=[], metavar="T=CSV",
                        help="offsets CSVs of TIN runs, e.g. 8=runs/tin_T8/metrics.offsets.csv")
    parser.add_argument("--summaries", nargs="*", default=[], help="train_summary.json files")
    parser.add_argument("--probes", help="the capability table (tinlab table --table probes): probes.png")


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
    if args.probes:
        written.append(probes(pd.read_csv(args.probes), out / "probes.png"))
    for p in written:
        print(f"-> {p}")
    return 0
