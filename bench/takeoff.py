"""When each run learned its task: the first epoch at which its training top-1 passed a threshold, or never.

    python bench/takeoff.py --out results/reference/probes/takeoff.csv results/runs/*_T8_*/train_summary.json

One row per run (train_summary.json): model, seed, dataset, frames, epochs, ``takeoff_epoch`` (first epoch
whose training top-1 reaches ``--threshold``, default 90%; empty if none), the last epoch's training top-1
and every epoch's (``train_top1_per_epoch``, ";"-separated, %), and ``train_seconds``: the wall time of
the training's last invocation (of the part after the resume, for a run resumed from its checkpoint). A
run that stopped early (diverged) has fewer epochs than its recipe. This is how the capability table's
bimodal cells were read: an order run either takes off at some epoch or stays at chance for all of them
(docs/probes.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinlab.errors import DataError  # noqa: E402
from tinlab.utils.io import read_text, write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402


def takeoff_row(path: Path, threshold: float) -> dict:
    """One run's row, from its train_summary.json (a DataError naming the file and key if it lacks one)."""
    try:
        summary = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not JSON ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    try:
        config = summary["provenance"]["config"]
        epochs = [int(epoch["epoch"]) for epoch in summary["history"]]
        top1 = [100.0 * float(epoch["train"]["top1"]) for epoch in summary["history"]]
        row = {"model": config["model"]["name"], "seed": int(config["run"]["seed"]),
               "dataset": config["data"]["dataset"], "frames": int(config["data"]["num_segments"])}
    except KeyError as error:
        raise DataError(f"{path}: not a tinlab train_summary.json (no key {error})") from None
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: not a tinlab train_summary.json ({error})") from None
    if not top1:
        raise DataError(f"{path}: no epoch in its history (the run trained none)")
    up = next((e for e, v in zip(epochs, top1) if v >= threshold), None)
    seconds = summary.get("wall_seconds_this_invocation")
    return {**row, "epochs": len(top1), "takeoff_epoch": up, "final_train_top1": round(top1[-1], 2),
            "train_top1_per_epoch": ";".join(f"{v:.1f}" for v in top1),
            "train_seconds": round(seconds, 1) if seconds is not None else None, "summary": str(path)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", nargs="+", type=Path, help="train_summary.json files")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threshold", type=float, default=90.0, help="training top-1 (%%) that counts as learned")
    args = parser.parse_args(argv)
    try:
        rows = [takeoff_row(p, args.threshold) for p in args.summaries]
    except DataError as error:
        print(f"takeoff: error: {error}", file=sys.stderr)
        return 2
    frame = pd.DataFrame(rows).sort_values(["dataset", "model", "seed"], kind="stable")
    frame["takeoff_epoch"] = frame.takeoff_epoch.astype("Int64")
    write_csv(frame, args.out, provenance({"threshold": args.threshold, "summaries": [str(p) for p in args.summaries]}))
    print(f"-> {args.out} ({len(frame)} runs, {int(frame.takeoff_epoch.notna().sum())} took off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
