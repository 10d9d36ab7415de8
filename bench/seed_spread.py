"""Seed-to-seed spread of a profile's Table 1 under a training recipe, and the regression tolerances it implies.

One training run is a sample: this script trains every Table 1 row of a profile once per seed, through the
workflow (``table1.seeds`` set to ``--seeds``; ``--set`` overrides the profile, e.g. a candidate recipe's
``base.optim.lr=0.08``), and measures how much the seed moves each row. Into ``--out`` it writes:

* ``runs.csv``: one row per training run (recipe, model, frames, seed): val top-1/top-5/pair accuracy,
  train top-1 of the last epoch, ``train_gain_last_quarter`` (train top-1 gained over the last quarter of
  the epochs: a run has reached its plateau when that is under 5 points), the epoch whose validation first
  came within 5 points of the final one (when the run "took off"), and minutes of training;
* ``seed_spread.csv``: per recipe, model, frames and metric: mean, sample standard deviation, the seeds and
  every seed's value; ``converged``: every seed's train gain over the last quarter under 5 points;
* ``tolerances.json`` (``--tolerances``): the tolerance ``tinlab regress`` applies to each accuracy of Table
  1: ``{"sd": s, "z": 3, "sd_by_row": {...}}``, where ``s`` is the seed-to-seed standard deviation pooled
  over the table's rows (root mean of their variances) and ``sd_by_row`` each row's own (``regress`` takes
  the larger of the two for a row). A fresh Table 1 row averages k seeds, as the reference row does; another
  machine (or thread count, or kernel) changes the float rounding, which moves a run like another seed, so
  the two means differ with standard deviation ``sqrt(2 / k) s``, and ``regress`` allows
  ``z sqrt(2 / k) s`` (rounded up to half a point): a healthy re-run leaves it about 0.3% of the time.

Files are merged by (recipe, model, frames, seed): several recipes, run one after the other, share one
``runs.csv``, which is the recipe study.

Example (the default profile's recipe over 5 seeds, 8 and 16 frames; about 50 minutes on 2 cores)::

    python bench/seed_spread.py --recipe default --seeds 0 1 2 3 4 --workdir /tmp/spread \\
        --out results/reference/seed_study --tolerances results/reference/tolerances.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinlab.engine.config import _apply_override  # noqa: E402
from tinlab.utils.io import read_yaml, write_csv, write_json  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402

METRICS = ["val_top1", "val_top5", "pair_accuracy"]
PLATEAU_POINTS = 5.0  # a run has converged when its train top-1 gained less than this over the last quarter
Z = 3.0
KEYS = ["recipe", "model", "frames", "seed"]


def profile_for(configfile: Path, seeds: list[int], overrides: list[str], models: list[str] | None,
                frames: list[int] | None) -> dict:
    config = read_yaml(configfile)
    for item in overrides:
        _apply_override(config, item)
    config["table1"]["seeds"] = list(seeds)
    for other in ("table2", "table5", "published"):  # Table 1's runs alone
        config.pop(other, None)
    if models:
        config["table1"]["models"] = models
    if frames:
        config["table1"]["frames"] = frames
    return config


def train_all(config: dict, workdir: Path, cores: int) -> None:
    """Every Table 1 run of ``config``, trained and evaluated by the workflow in ``workdir``."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "profile.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
           str(cores), "--rerun-incomplete", "--configfile", str(workdir / "profile.yaml"),
           "--omit-from", "latency", "table1", "--", "results/table1.csv"]
    # the jobs' `python` is this interpreter (its environment has tinlab)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{proc.stderr[-3000:]}")


def run_row(run: Path) -> dict:
    """One evaluated run folder -> its row of runs.csv."""
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    cfg = metrics["provenance"]["config"]
    history = summary["history"]
    train = [100 * h["train"]["top1"] for h in history]
    quarter = max(1, len(train) // 4)
    val = [(h["epoch"], 100 * h["val"]["top1"]) for h in history if h.get("val")]
    final = 100 * metrics["top1"]
    took_off = next((e for e, v in val if v >= 100 * summary["final"]["top1"] - PLATEAU_POINTS), None)
    return {"model": cfg["model"]["name"], "frames": cfg["data"]["num_segments"], "seed": cfg["run"]["seed"],
            "val_top1": final, "val_top5": 100 * metrics["top5"],
            "pair_accuracy": 100 * metrics["twins"]["pair_accuracy"] if metrics.get("twins") else None,
            "train_top1_final": train[-1], "train_gain_last_quarter": train[-1] - train[-1 - quarter],
            "took_off_epoch": took_off, "epochs": len(history),
            "train_minutes": sum(h["train"]["seconds"] for h in history) / 60,
            "threads": cfg["run"].get("threads"), "device": metrics["provenance"]["device"],
            "run": run.name}


def spread(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (recipe, model, frames), g in runs.groupby(["recipe", "model", "frames"], sort=False):
        g = g.sort_values("seed")
        for metric in METRICS:
            values = g[metric].astype(float)
            rows.append({"recipe": recipe, "model": model, "frames": frames, "metric": metric,
                         "mean": values.mean(), "sd": values.std(ddof=1), "n": len(values),
                         "converged": bool((g.train_gain_last_quarter < PLATEAU_POINTS).all()),
                         "minutes_per_run": g.train_minutes.mean(), "seeds": " ".join(map(str, g.seed)),
                         "per_seed": ";".join(f"{v:.4g}" for v in values)})
    return pd.DataFrame(rows)


def pooled_sd(table: pd.DataFrame, metric: str) -> float:
    """Root mean of the rows' variances (models x frames) of one metric."""
    g = table[(table.metric == metric) & table.sd.notna()]
    return math.sqrt((g.sd ** 2).mean())


def tolerance_of(sd: float, seeds: int, z: float = Z) -> float:
    """What ``regress`` allows between two means of ``seeds`` runs each (rounded up to half a point)."""
    return math.ceil(2 * z * math.sqrt(2 / seeds) * sd) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "workflow" / "config" / "default.yaml")
    parser.add_argument("--recipe", required=True, help="name of this candidate in runs.csv (e.g. default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override, e.g. base.optim.lr=0.08 (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--models", nargs="+", help="Table 1 models to train (default: the profile's)")
    parser.add_argument("--frames", type=int, nargs="+", help="Table 1 frames (default: the profile's)")
    parser.add_argument("--workdir", type=Path, required=True, help="the workflow's working folder")
    parser.add_argument("--out", type=Path, required=True, help="folder of runs.csv and seed_spread.csv")
    parser.add_argument("--tolerances", type=Path, help="write the tolerances of this recipe's Table 1 here")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)

    config = profile_for(args.configfile, args.seeds, args.overrides, args.models, args.frames)
    train_all(config, args.workdir, args.cores)
    runs_dir = args.workdir / config["runs_dir"]
    fresh = pd.DataFrame([run_row(p.parent) for p in sorted(runs_dir.glob("*/metrics.json"))])
    fresh = fresh[fresh.seed.isin(args.seeds) & fresh.model.isin(config["table1"]["models"])
                  & fresh.frames.isin(config["table1"]["frames"])].assign(recipe=args.recipe)
    runs_csv = args.out / "runs.csv"
    old = pd.read_csv(runs_csv) if runs_csv.is_file() else pd.DataFrame(columns=KEYS)
    runs = pd.concat([old, fresh]).drop_duplicates(KEYS, keep="last").sort_values(KEYS)
    runs = runs[KEYS + [c for c in runs.columns if c not in KEYS]]
    table = spread(runs)
    prov = provenance({"configfile": str(args.configfile), "recipe": args.recipe, "overrides": args.overrides,
                       "seeds": args.seeds, "plateau_points": PLATEAU_POINTS})
    write_csv(runs, runs_csv, prov)
    write_csv(table, args.out / "seed_spread.csv", prov)
    if args.tolerances:
        mine = table[table.recipe == args.recipe]
        tol = {"default": 2.0, "table1": {m: {"sd": round(pooled_sd(mine, m), 3), "z": Z, "sd_by_row": {
            f"{r.model}_T{r.frames}": round(r.sd, 3) for r in mine[mine.metric == m].itertuples()}} for m in METRICS}}
        write_json(args.tolerances, {**tol, "derived_from": str(runs_csv), "recipe": args.recipe,
                                     "rule": "z * sqrt(2 / seeds per row) * max(sd, sd_by_row), rounded up to 0.5",
                                     "provenance": prov})
        print(json.dumps(tol, indent=2))
    with pd.option_context("display.width", 200):
        print(table[table.recipe == args.recipe].drop(columns=["per_seed"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
