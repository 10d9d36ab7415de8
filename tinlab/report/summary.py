"""``results/README.md``: the tables rendered and the plots embedded, with where each came from.

    python -m tinlab summary --tables results/table1.csv results/table2.csv --plots results/plots/*.png \
        --out results/README.md
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from ..utils.io import atomic_write_text
from ..utils.provenance import provenance_path

DROP = {"metrics_file", "published_source"}
COMPARISONS = (
    "Each model against TSN and TSM (Tables 1, 2), TIN against r-TCN where both are in a table (`control`: the "
    "negative control, the same function trained from the same weights on the same data, so a verdict there is a "
    "false positive), and each ablation row against TIN's default row (Table 5), on the same validation videos. "
    "`diff_top1`: the difference in top-1 (points) with its 95% interval from a paired bootstrap (10,000 "
    "resamples of the videos and of the seeds, paired by seed). `p_seeds`: t-test of the rows' per-seed top-1 "
    "(paired by seed); `p_holm`: its Holm adjustment over the comparisons of the table. Verdict \"better\" / "
    "\"worse\" when `p_holm` < 0.05 and the interval excludes 0; \"no verdict\" when a row has one run (training "
    "noise unmeasured); otherwise \"not distinguishable at this size\", with `limited_by`: `videos` (the exact "
    "McNemar test on one run of each, `p_mcnemar`, not significant after Holm) or `seeds` (McNemar significant, "
    "but the runs of a row disagree, or one run), and for `videos`, `videos_needed`: the validation videos at "
    "which the observed discordance rates would give p < 0.05 / (comparisons in the table), empty when the "
    "observed difference is 0.")


def render(tables: list[Path], plots: list[Path], out: Path, title: str) -> str:
    lines = [f"# {title}", "", "Written by `python -m tinlab summary`; every table is a CSV beside this file, "
             "with its provenance in `<table>.csv.provenance.json`.", ""]
    for path in tables:
        frame = pd.read_csv(path)
        lines += [f"## {path.stem}", ""]
        prov = provenance_path(path)
        if prov.is_file():
            p = json.loads(prov.read_text())
            lines += [f"`{path.name}`: code {p.get('code_version')}, torch {p.get('torch')}, "
                      f"{p.get('device')}, {p.get('created')}", ""]
        if path.stem == "comparisons":
            lines += [COMPARISONS, ""]
        lines += [frame.drop(columns=[c for c in frame if c in DROP]).to_markdown(index=False, floatfmt=".4g"), ""]
    if plots:
        lines += ["## Plots", ""]
        for plot in plots:
            lines += [f"### {plot.stem}", "", f"![{plot.stem}]({os.path.relpath(plot, out.parent)})", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", nargs="*", default=[])
    parser.add_argument("--plots", nargs="*", default=[])
    parser.add_argument("--title", default="tinlab results")
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    atomic_write_text(out, render([Path(t) for t in args.tables], [Path(p) for p in args.plots], out, args.title))
    print(f"-> {out}")
    return 0
