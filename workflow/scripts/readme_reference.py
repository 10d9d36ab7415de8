"""Render the README's reference tables from the committed default-profile results.

    python workflow/scripts/readme_reference.py [--reference results/reference] [--readme README.md] [--check]

Replaces the text between ``<!-- reference-tables:begin -->`` and ``<!-- reference-tables:end -->`` in
the README with Tables 1, 2 and 5 (with 95% intervals), the latency ratios and the paired comparisons, and
the text between ``<!-- probes-table:begin -->`` and ``<!-- probes-table:end -->`` with the capability table of
the temporal probes, read from ``results/reference/*.csv`` and their provenance, so every number there comes from a committed result file. ``--check`` exits 1 when the
README is not up to date instead of rewriting it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from tinlab.utils.io import atomic_write_text
from tinlab.utils.provenance import provenance_path

BEGIN, END = "<!-- reference-tables:begin -->", "<!-- reference-tables:end -->"
PROBES_BEGIN, PROBES_END = "<!-- probes-table:begin -->", "<!-- probes-table:end -->"


def _md(frame: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """Markdown with every float formatted by ``floatfmt`` (NaN as "–"); strings are kept as written."""
    cells = frame.apply(lambda col: col.map(
        lambda v: "–" if isinstance(v, float) and v != v else format(v, floatfmt) if isinstance(v, float) else str(v)))
    align = ["left" if c in ("model", "dataset", "boundary", "reverse offsets", "routing norm") else "right" for c in frame]
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align)


def _ci(t: pd.DataFrame, column: str) -> pd.Series:
    """``"86.1 [80.6, 91.0]"``: the value with its 95% interval where the table has one."""
    if f"{column}_lo" not in t:
        return t[column]
    return pd.Series([float("nan") if v != v else f"{v:.1f}" if lo != lo else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"
                      for v, lo, hi in zip(t[column], t[f"{column}_lo"], t[f"{column}_hi"])], index=t.index)


def _per_seed(t: pd.DataFrame) -> pd.Series:
    return t.val_top1_per_seed.astype(str).map(lambda v: " / ".join(
        x if x == "diverged" else f"{float(x):.1f}" for x in v.split(";")))


def _diverged_in_place(t: pd.DataFrame, top1: pd.Series) -> pd.Series:
    """The top-1 cell of a row with a diverged seed says so (``diverged``: which seed, when, in what)."""
    if "diverged" not in t:
        return top1
    return pd.Series([d if isinstance(d, str) and d else v for v, d in zip(top1, t.diverged)], index=t.index)


def _seed_columns(t: pd.DataFrame, out: pd.DataFrame, at: int) -> pd.DataFrame:
    """The standard deviation over seeds and every seed's top-1, where the rows have several seeds."""
    if "val_top1_std" in t and (t.val_top1_std.notna().any() or t.val_top1_per_seed.astype(str).str.contains(";").any()):
        out.insert(at, "sd over seeds", t.val_top1_std)
        out.insert(at + 1, "top-1 per seed", _per_seed(t))
    return out


def table1(ref: Path) -> str:
    t = pd.read_csv(ref / "table1.csv")
    out = pd.DataFrame({
        "model": t.model, "frames": t.frames, "epochs": t.epochs,
        "GFLOPs/video": t.gflops.map(lambda v: f"{v:.4f}"), "params (M)": t.params.map(lambda v: f"{v / 1e6:.3f}"),
        "top-1": _diverged_in_place(t, _ci(t, "val_top1")), "top-5": t.val_top5,
        "twin pair acc.": _ci(t, "pair_accuracy"), "latency (ms)": t.latency_ms})
    return _md(_seed_columns(t, out, 6))


def table2(ref: Path) -> str:
    t = pd.read_csv(ref / "table2.csv")
    out = pd.DataFrame({"dataset": t.dataset, "model": t.model, "frames": t.frames,
                        "top-1": _diverged_in_place(t, _ci(t, "val_top1")),
                        "top-5": t.val_top5, "twin pair acc.": _ci(t, "pair_accuracy")})
    return _md(_seed_columns(t, out, 4))


def table5(ref: Path) -> str:
    t = pd.read_csv(ref / "table5.csv")
    out = pd.DataFrame({"offset groups": t.groups, "reverse offsets": t.reverse, "boundary": t.boundary,
                        "top-1": _diverged_in_place(t, _ci(t, "val_top1")), "top-5": t.val_top5,
                        "twin pair acc.": _ci(t, "pair_accuracy"), "params": t.params})
    return _md(_seed_columns(t, out, 4))


def _p(p: float) -> str:
    return "–" if p != p else f"{p:.2g}"


def comparisons(ref: Path) -> str:
    t = pd.read_csv(ref / "comparisons.csv")
    control = t["control"] if "control" in t else pd.Series([False] * len(t))
    out = pd.DataFrame({
        "table": t["table"], "frames": t.frames, "dataset": t.dataset,
        "model": [f"{m} (control)" if c else m for m, c in zip(t.model, control)], "against": t.reference,
        "Δ top-1 [95% interval]": ["–" if d != d else f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in
                                   zip(t.diff_top1, t.diff_top1_lo, t.diff_top1_hi)],
        "p (seeds)": t.p_seeds.map(_p) if "p_seeds" in t else "–", "p (Holm)": t.p_holm.map(_p),
        "only model / only ref. right": ["–" if a != a else f"{int(a)} / {int(b)}"
                                         for a, b in zip(t.only_model_right, t.only_reference_right)],
        "p (McNemar)": t.p_mcnemar.map(_p), "verdict": t.verdict,
        "videos needed": [("more seeds" if lim == "seeds" else "–") if v != v else f"{int(v)}"
                          for v, lim in zip(t.videos_needed, t.get("limited_by", pd.Series([""] * len(t))).fillna(""))]})
    return _md(out)


def seed_study(ref: Path) -> str:
    """Recipe -> val top-1 mean ± sd over the seeds per model and frames, minutes per run, convergence."""
    t = pd.read_csv(ref / "seed_study" / "seed_spread.csv")
    t = t[t.metric == "val_top1"]
    rows = []
    for (recipe, frames), g in t.groupby(["recipe", "frames"], sort=False):
        row = {"recipe": recipe, "frames": int(frames), "seeds": int(g.n.max())}
        for r in g.itertuples():
            row[r.model] = f"{r.mean:.1f} ± {r.sd:.1f}"
        row["sd ≤ 3 (temporal models)"] = "yes" if (g[g.model != "tsn"].sd <= 3).all() else "no"
        row["converged"] = "yes" if g.converged.all() else "no"
        row["minutes per run"] = f"{g.minutes_per_run.min():.1f}–{g.minutes_per_run.max():.1f}"
        rows.append(row)
    return _md(pd.DataFrame(rows))


def aa_rate(ref: Path) -> str:
    t = pd.read_csv(ref / "aa_rate.csv")
    return _md(pd.DataFrame({
        "model": t.model.where(t.model != "all", "all"), "frames": t.frames.map(lambda f: "–" if f == 0 else str(f)),
        "seeds per side": t.k.astype(str), "A/A splits": t.splits,
        "verdict rule": [f"{d} ({r:.1%})" for d, r in zip(t.rule_directional, t.rule_rate)],
        "interval alone": [f"{d} ({r:.1%})" for d, r in zip(t.interval_only_directional, t.interval_only_rate)],
        "McNemar on one run": [f"{d} ({r:.1%})" for d, r in zip(t.mcnemar_only_directional, t.mcnemar_only_rate)]}))


def latency_ratios(ref: Path) -> str:
    t = pd.read_csv(ref / "latency.csv")
    t = t[t.kind == "model"].set_index(["name", "mode", "frames"]).median_ms
    rows = []
    for frames in sorted({f for _, _, f in t.index}):
        row = {"frames": int(frames)}
        for mode, label in (("infer", "inference"), ("train", "train step")):
            for num, den, name in (("tin", "tsm", "TIN / TSM"), ("rtcn", "tin", "r-TCN / TIN")):
                if (num, mode, frames) in t.index and (den, mode, frames) in t.index:
                    row[f"{name} ({label})"] = t[num, mode, frames] / t[den, mode, frames]
        rows.append(row)
    return _md(pd.DataFrame(rows), floatfmt=".2f")


def trained_at(ref: Path) -> str:
    """The code versions the reference runs were trained at (the tables' train_code_version column)."""
    versions = []
    for name in ("table1", "table2", "table5"):
        if not (ref / f"{name}.csv").is_file():
            continue
        t = pd.read_csv(ref / f"{name}.csv")
        if "train_code_version" in t:
            versions += [v for cell in t.train_code_version.dropna().astype(str) for v in cell.replace("+", " ").split()]
    return ", ".join(dict.fromkeys(versions)) or "(not recorded by the tinlab that made these tables)"


def _sci(v) -> str:
    """A loss or factor that may be astronomically large: 2.40, 6.2e+14, inf, nan."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{v:.3g}" if v != v or abs(v) == float("inf") or abs(v) >= 1e4 else f"{v:.2f}"


def tada_eval(ref: Path, recipe: str) -> str:
    """bench/tada_eval_scale.py: per route norm and epoch, eval-mode loss as trained / with precise BN / with
    the routing BNs on batch statistics, and the largest calibration factor in train and eval mode."""
    t = pd.read_csv(ref / "tada_eval" / recipe / "epochs.csv")
    out = pd.DataFrame({"routing norm": t.route_norm, "epoch": t.epoch, "train loss": t.train_loss.map(_sci),
                        "val loss (eval mode)": t.val_loss_eval.map(_sci),
                        "val loss, precise BN": t.val_loss_precise_bn.map(_sci),
                        "val loss, routing BN on batch stats": t.val_loss_route_bn_batch_stats.map(_sci),
                        "val top-1 (eval)": t.val_top1_eval.map(lambda v: f"{v:.1f}"),
                        "max α, train mode": t.alpha_max_train.map(_sci), "max α, eval mode": t.alpha_max_eval.map(_sci)})
    return _md(out)


def tada_blocks(ref: Path, recipe: str, epoch: int) -> str:
    """log10 of the eval/train RMS of each TAda block's output at one epoch, per routing norm."""
    t = pd.read_csv(ref / "tada_eval" / recipe / "blocks.csv")
    t = t[t.epoch == epoch]
    wide = t.pivot(index="route_norm", columns="block", values="log10_eval_over_train")
    wide = wide[list(dict.fromkeys(t.block))].map(lambda v: f"{float(v):.2f}")
    return _md(wide.reset_index().rename(columns={"route_norm": "routing norm"}))


def probes(ref: Path) -> str:
    """The capability table as a grid: a row per model, a column per probe (with its chance level); each cell
    the mean top-1 over seeds, in bold where the model is "better" than TSN, with ▲ / ▼ where it is better /
    worse than TSM; then the order reach."""
    t = pd.read_csv(ref / "probes.csv")
    columns = {p: f"{p} ({c:.0f})" for p, c in t.groupby("probe", sort=False).chance.first().items()}

    def cell(row) -> str:
        if isinstance(row.diverged, str) and row.diverged:
            return "diverged"
        text = f"{row.val_top1:.1f}"
        text = f"**{text}**" if row.verdict_vs_tsn == "better" else text
        return text + {"better": " ▲", "worse": " ▼"}.get(row.verdict_vs_tsm, "")

    grid = t.assign(cell=[cell(r) for r in t.itertuples()]).pivot(index="model", columns="probe", values="cell")
    grid = grid.loc[list(dict.fromkeys(t.model)), list(columns)].rename(columns=columns)
    grid["order reach"] = t.groupby("model", sort=False).order_reach.first().astype(int).astype(str)
    return grid.reset_index().to_markdown(index=False, disable_numparse=True,
                                          colalign=["left"] + ["right"] * (grid.shape[1]))


def render_probes(ref: Path, shown: str) -> str:
    prov = json.loads(provenance_path(ref / "probes.csv").read_text())
    t = pd.read_csv(ref / "probes.csv")
    seeds = int(t.val_top1_per_seed.astype(str).str.count(";").max()) + 1
    return "\n\n".join([
        f"`{shown}/probes.csv` ({seeds} seeds per cell, {int(t.frames.iloc[0])} frames; assembled at "
        f"{prov['code_version']}; rendered by `python workflow/scripts/readme_reference.py`). Top-1 (%) averaged over "
        "the seeds, chance in the column header; **bold**: better than TSN, ▲ / ▼: better / worse than TSM "
        "(p (Holm) < 0.05 within the probe and the 95% interval over videos and seeds excluding 0); order reach: "
        "the largest gap g at which the model is better than TSN (0: none).", probes(ref)])


def render(ref: Path, shown: str, part: str = "readme") -> str:
    """The tables of ``ref``, which the text names ``shown`` (its path relative to the page): the README's
    (``readme``: Tables 1, 2, 5, latency ratios, comparisons) or docs/results.md's (``details``: the seed
    study, A/A false positives, TAda2D in eval mode)."""
    prov = json.loads(provenance_path(ref / "table1.csv").read_text())
    lat = pd.read_csv(ref / "latency.csv").iloc[0]
    header = (f"Runs trained at {trained_at(ref)}; tables assembled at {prov['code_version']}; torch {prov['torch']}, "
              f"Python {prov['python']}; rendered from `{shown}` by `python workflow/scripts/readme_reference.py`.")
    parts = [header,
             f"**Table 1** (`{shown}/table1.csv`; top-1 as the mean over the seeds with its 95% interval over videos and "
             f"seeds; latency: batch {lat['batch']}, {lat['device_name']}, {lat['dtype']}):", table1(ref)]
    if (ref / "table2.csv").is_file():
        parts += [f"**Table 2** (`{shown}/table2.csv`), temporal-sensitive vs temporal-insensitive data:", table2(ref)]
    if (ref / "table5.csv").is_file():
        ablation_frames = " / ".join(map(str, sorted(pd.read_csv(ref / "table5.csv").frames.unique())))
        parts += [f"**Table 5** (`{shown}/table5.csv`), TIN ablation at {ablation_frames} frames (the default profile "
                  "interlaces half the channels, shift_div 2, in every row: at width 0.25 a quarter of the first stage "
                  "is too few channels for 4 groups plus 4 reverse groups; top-1 as mean ± standard deviation over "
                  "the seeds where there are several):", table5(ref)]
    parts += [f"**Latency ratios** (`{shown}/latency.csv`, same run, interleaved rounds):", latency_ratios(ref)]
    details = [header]
    if (ref / "seed_study" / "seed_spread.csv").is_file():
        details += [f"**Seed study** (`{shown}/seed_study/`, `bench/seed_spread.py`): val top-1 mean ± standard "
                  "deviation over the seeds, per recipe, model and frames; \"converged\": every run's train top-1 "
                  "gained less than 5 points over its last quarter of epochs; minutes of training per run (one "
                  "thread, two runs at a time on 2 cores).", seed_study(ref)]
    if (ref / "aa_rate.csv").is_file():
        details += [f"**A/A false positives** (`{shown}/aa_rate.csv`, `bench/aa_rate.py`): each model against itself "
                  "on disjoint seeds of the seed study; a \"better\"/\"worse\" is a false positive (no Holm "
                  "adjustment: one comparison at a time).", aa_rate(ref)]
    for recipe, what in (("previous", "the recipe before the calibrated one (384 videos of 64 px, 48 px crops, batch 8, "
                                      "lr 0.02), 8 frames, seed 0, 5 epochs"),
                         ("default", "the default recipe, 8 frames, seed 0")):
        if (ref / "tada_eval" / recipe / "epochs.csv").is_file():
            details += [f"**TAda2D in eval mode**, {what} (`{shown}/tada_eval/{recipe}/`, `bench/tada_eval_scale.py`): "
                      "validation loss with the running statistics as trained, with precise BN (population "
                      "statistics over 32 training batches) and with only the routing functions' BatchNorms on "
                      "batch statistics; the largest calibration factor α on a validation batch in train and eval "
                      "mode.", tada_eval(ref, recipe),
                      f"log10 of the eval/train ratio of each TAda block's output RMS after epoch 1 ({recipe}):",
                      tada_blocks(ref, recipe, 1)]
    if (ref / "comparisons.csv").is_file():
        parts += [f"**Comparisons** (`{shown}/comparisons.csv`, `tinlab compare`): each model against TSN and TSM, "
                  "TIN against r-TCN (the negative control: the same function, the same initial weights and data, "
                  "so any verdict there would be a false positive), each ablation row against TIN's default row "
                  "(G=2, reverse offsets, zero boundary), on the same validation videos. Δ top-1 in points with the "
                  "95% interval of a paired bootstrap (10,000 resamples of videos and of seeds, seeds paired); "
                  "p (seeds): t-test of the per-seed top-1, paired by seed; p (Holm): its Holm adjustment within "
                  "each table. \"better\"/\"worse\" when p (Holm) < 0.05 and the interval excludes 0; a row with one "
                  "run gets no verdict. The exact McNemar test on the first seed's runs (discordant videos: only "
                  "the model right / only the reference right) says whether the videos alone could separate one "
                  "pair of runs; \"videos needed\": validation videos at which the observed discordance rates "
                  "would reach p < 0.05 / (comparisons in the table), or \"more seeds\" where McNemar is decisive "
                  "but the runs of a row disagree.", comparisons(ref)]
    return "\n\n".join(parts if part == "readme" else details)


def _replace(text: str, page: Path, begin: str, end: str, body: str) -> str:
    if text.count(begin) != 1 or text.count(end) != 1:
        sys.exit(f"{page}: expected one {begin} and one {end} marker")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def _rendered(page: Path, ref: Path, part: str) -> tuple[str, str]:
    """(the page's text, the page with its tables rendered from ``ref``; the README also gets the capability
    table between its probes markers, when ``ref/probes.csv`` exists)."""
    text = page.read_text()
    shown = os.path.relpath(ref, page.parent)
    new = _replace(text, page, BEGIN, END, render(ref, shown, part))
    if part == "readme" and (ref / "probes.csv").is_file():
        new = _replace(new, page, PROBES_BEGIN, PROBES_END, render_probes(ref, shown))
    return text, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path("results/reference"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--docs", type=Path, help="the page of the study tables (default: docs/results.md beside the "
                                                  "README, when it exists)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is not up to date")
    args = parser.parse_args(argv)
    docs = args.docs or args.readme.parent / "docs" / "results.md"
    pages = [(args.readme, "readme")] + ([(docs, "details")] if docs.is_file() else [])
    stale = 0
    for page, part in pages:
        text, new = _rendered(page, args.reference, part)
        if args.check:
            if new != text:
                print(f"{page}: reference tables differ from {args.reference}; run {Path(__file__).name}")
                stale = 1
        else:
            atomic_write_text(page, new)
    return stale


if __name__ == "__main__":
    sys.exit(main())
