"""Re-record a reference folder from fresh results, saying first what changes.

    python workflow/scripts/record_reference.py --results results --reference results/reference [--yes]

A reference changes only after ``tinlab regress`` of the new files against the old ones has been read:
this script prints that comparison first (exit status included), then, with ``--yes``, copies every result
file the reference already holds (and those named by ``--add``) (tables, comparisons, measurements, plots, the summary; each with its
provenance) from ``--results`` into ``--reference``, and re-renders the README's reference tables when the
reference is the README's (``results/reference``). Without ``--yes`` nothing is written: paste the printed
comparison into the commit message, then run it again with ``--yes``.

For the ci profile's folder (``results/reference/ci``) the same command copies ``table1.csv``; its
``tolerances.json`` and seed spread come from ``bench/seed_spread.py``, never from one run.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What a results folder holds and a reference may keep (generated files only: the seed study, the tolerances
# and the benchmarks' own CSVs are written by their scripts).
RESULT_FILES = ["table1.csv", "table2.csv", "table5.csv", "comparisons.csv", "complexity.csv", "equivalence.csv",
                "latency.csv", "probes.csv", "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--reference", type=Path, default=Path("results/reference"))
    parser.add_argument("--yes", action="store_true", help="copy the files after printing the comparison")
    parser.add_argument("--add", nargs="+", default=[], choices=RESULT_FILES, metavar="FILE",
                        help="also record these result files, which the reference does not hold yet")
    args = parser.parse_args(argv)
    check = subprocess.run([sys.executable, "-m", "tinlab", "regress", "--results", str(args.results),
                            "--reference", str(args.reference)], capture_output=True, text=True)
    print(f"$ tinlab regress --results {args.results} --reference {args.reference}   (exit {check.returncode})")
    print(check.stdout + check.stderr, end="")
    names = [n for n in RESULT_FILES if ((args.reference / n).is_file() or n in args.add) and (args.results / n).is_file()]
    if check.returncode == 2:
        # Nothing in common is fine when every file to record is new to the reference (--add): there is no
        # earlier reference to compare it with. Anything else that stops regress stops the recording.
        if not (names and all(not (args.reference / n).is_file() for n in names) and "nothing to compare" in
                check.stdout + check.stderr):
            return 2
        print(f"(no earlier reference of {', '.join(names)}: nothing to compare them with)")
    plots = sorted((args.results / "plots").glob("*.png")) if (args.reference / "plots").is_dir() else []
    if not args.yes:
        print(f"\nnothing written; with --yes: {', '.join(names + [f'plots/{p.name}' for p in plots])} "
              f"-> {args.reference}")
        return 0
    for name in names:
        for suffix in ("", ".provenance.json"):
            source = args.results / (name + suffix)
            if source.is_file():
                shutil.copyfile(source, args.reference / (name + suffix))
    for plot in plots:
        shutil.copyfile(plot, args.reference / "plots" / plot.name)
    print(f"recorded {len(names)} files and {len(plots)} plots into {args.reference}")
    if args.reference.resolve() == (REPO / "results" / "reference").resolve():
        subprocess.run([sys.executable, str(REPO / "workflow" / "scripts" / "readme_reference.py"), "--reference",
                        str(args.reference), "--readme", str(REPO / "README.md")], check=True)
        print("README reference tables re-rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
