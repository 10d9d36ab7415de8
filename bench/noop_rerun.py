"""Time a Snakemake invocation that has nothing to do (parse, DAG, no job), in a finished workdir.

    python bench/noop_rerun.py --workdir /tmp/smoke --configfile workflow/config/smoke.yaml --rounds 5 \\
        --out /tmp/noop.csv [TARGET ...]

Writes one row per round (seconds, and whether Snakemake said "Nothing to be done") with provenance;
prints the median. The workdir must hold a finished run of the same profile and targets (it fails
otherwise: a no-op is what is measured).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--configfile", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(args.workdir), "--cores", "2",
           *args.targets] + (["--configfile", str(args.configfile)] if args.configfile else [])
    rows = []
    for r in range(args.rounds):
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        rows.append({"round": r, "seconds": seconds, "nothing_to_do": "Nothing to be done" in out.stdout + out.stderr,
                     "returncode": out.returncode})
    table = pd.DataFrame(rows)
    if not table.nothing_to_do.all():
        raise SystemExit(f"not a no-op: snakemake had work to do in {args.workdir}")
    write_csv(table, args.out, provenance({"command": " ".join(cmd)}))
    print(f"no-op rerun: median {statistics.median(table.seconds):.2f} s over {len(table)} rounds -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
