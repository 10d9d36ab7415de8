"""Seed-to-seed spread of a profile's Table 1, and the regression tolerances derived from it.

Runs the workflow's Table 1 once per seed (each in its own working folder, every other setting as the
profile says), then writes, into ``--out`` (e.g. ``results/reference/ci``):

* ``seed_spread.csv``: per model and accuracy metric, the mean, the sample standard deviation and every
  seed's value;
* ``tolerances.json``: per accuracy metric of Table 1, the tolerance ``tinlab regress`` uses,
  ``ceil_0.5(3 * sqrt(2) * s)`` where ``s`` is the standard deviation pooled over the models
  (root mean of their variances). A fresh run on another machine differs from the reference like a
  run with another seed (float summation order changes the trajectory), so the difference of two runs
  has standard deviation ``sqrt(2) s``, and 3 of those is a two-sided band that a healthy run leaves
  about 0.3% of the time;
* ``table1.csv``: the table of ``--reference-seed`` (the committed reference), with its provenance.

Example (about 12 minutes on 2 cores for the ci profile)::

    python bench/seed_spread.py --configfile workflow/config/ci.yaml --seeds 0 1 2 3 4 \\
        --workdir /tmp/spread --out results/reference/ci
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinlab.utils.io import write_csv, write_json  # noqa: E402
from tinlab.utils.provenance import provenance, provenance_path  # noqa: E402

METRICS = ["val_top1", "val_top5", "pair_accuracy"]


def run_seed(configfile: Path, seed: int, workdir: Path, cores: int) -> pd.DataFrame:
    """Table 1 of the profile trained with ``base.run.seed = seed`` in ``workdir``."""
    import yaml

    config = yaml.safe_load(configfile.read_text())
    config["base"].setdefault("run", {})["seed"] = seed
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "profile.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
           str(cores), "results/table1.csv", "--configfile", str(workdir / "profile.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"seed {seed}: snakemake failed:\n{proc.stderr[-3000:]}")
    return pd.read_csv(workdir / "results" / "table1.csv").assign(seed=seed)


def spread(tables: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, frames), g in tables.groupby(["model", "frames"], sort=False):
        for metric in METRICS:
            values = g.sort_values("seed")[metric]
            rows.append({"model": model, "frames": frames, "metric": metric, "mean": values.mean(),
                         "sd": values.std(ddof=1), "seeds": " ".join(map(str, sorted(g.seed))),
                         "per_seed": ";".join(f"{v:.4g}" for v in values)})
    return pd.DataFrame(rows)


def tolerances(table: pd.DataFrame) -> dict:
    out = {"default": 2.0, "table1": {}}
    for metric, g in table.groupby("metric", sort=False):
        pooled = math.sqrt((g["sd"] ** 2).mean())
        out["table1"][metric] = math.ceil(2 * 3 * math.sqrt(2) * pooled) / 2
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "workflow" / "config" / "ci.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--reference-seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True, help="one working folder per seed goes here")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    tables = pd.concat([run_seed(args.configfile, s, args.workdir / f"seed{s}", args.cores) for s in args.seeds])
    table = spread(tables)
    tol = tolerances(table)
    prov = provenance({"configfile": str(args.configfile), "seeds": args.seeds, "rule": "3 * sqrt(2) * pooled sd"})
    write_csv(table, args.out / "seed_spread.csv", prov)
    write_json(args.out / "tolerances.json", {**tol, "derived_from": "seed_spread.csv", "provenance": prov})
    reference = args.workdir / f"seed{args.reference_seed}" / "results"
    for name in ("table1.csv", provenance_path("table1.csv").name):
        shutil.copyfile(reference / name, args.out / name)
    print(table.to_string(index=False))
    print(json.dumps(tol, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
