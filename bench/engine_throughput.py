"""Engine overhead: training clips/s of :class:`tinlab.engine.loop.Trainer` vs a bare PyTorch loop on the
same model, data and batches, and data-loading time vs compute time (a script, not a test).

    python bench/engine_throughput.py --epochs 3 --out results/engine_throughput.csv

Generates a small synthetic-motion dataset in a temporary folder (or uses ``--root``). Rounds alternate
engine epoch / bare epoch so machine noise hits both alike; the first round is a warm-up and is dropped.
``data_only_s``: one pass over the loader without a model; ``compute_only_s``: the bare loop on batches
already in memory. Printed ratio: engine clips/s / bare clips/s (1.0 = no overhead), from the FASTEST
round of each (on a shared machine, slow rounds measure the neighbours; medians are printed too).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinlab.data import generate, normalize_clips, set_epoch  # noqa: E402
from tinlab.engine.config import load_config  # noqa: E402
from tinlab.engine.loop import Trainer  # noqa: E402
from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402


def bare_epoch(trainer: Trainer, epoch: int, batches: list | None = None) -> tuple[float, int]:
    """Plain SGD loop (forward, cross-entropy, backward, step) on the trainer's model and optimizer."""
    model, opt = trainer.model, trainer.optimizer
    model.train()
    if batches is None:
        set_epoch(trainer.train_loader, epoch)
    start, n = time.perf_counter(), 0
    for clips, labels in batches if batches is not None else trainer.train_loader:
        loss = F.cross_entropy(model(normalize_clips(clips)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += labels.numel()
    return time.perf_counter() - start, n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tin")
    p.add_argument("--root", help="an existing synthetic-motion dataset (default: generate one)")
    p.add_argument("--num-train", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--num-segments", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3, help="measured rounds (after one warm-up round)")
    p.add_argument("--out", help="CSV to write (with provenance)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or generate("synthetic-motion", Path(tmp) / "motion", num_train=args.num_train, num_val=8,
                                     size=args.size, min_frames=8, max_frames=16)
        cfg = load_config(None, [f"model.name={args.model}", "model.backbone=resnet18", "model.width_mult=0.25",
                                 "model.small_stem=true", f"data.root={root}", f"data.num_segments={args.num_segments}",
                                 f"data.input_size={args.size}", f"data.batch_size={args.batch_size}",
                                 f"data.num_workers={args.num_workers}", "optim.bn=train", "optim.epochs=100"])
        trainer = Trainer(cfg)
        engine, bare = [], []
        for r in range(args.epochs + 1):
            stats = trainer.train_epoch(r)
            seconds, n = bare_epoch(trainer, r)
            if r:
                engine.append((stats["seconds"], stats["data_seconds"], n))
                bare.append(seconds)
        set_epoch(trainer.train_loader, 0)
        start = time.perf_counter()
        batches = list(trainer.train_loader)
        data_only = time.perf_counter() - start
        compute_only = min(bare_epoch(trainer, 0, batches)[0] for _ in range(args.epochs))
    n = engine[0][2]
    row = {"model": args.model, "batch_size": args.batch_size, "num_segments": args.num_segments,
           "input_size": args.size, "num_workers": args.num_workers, "clips_per_epoch": n,
           "threads": torch.get_num_threads(),
           "engine_train_clips_per_s": n / min(e[0] for e in engine),
           "bare_train_clips_per_s": n / min(bare),
           "engine_train_clips_per_s_median": n / statistics.median(e[0] for e in engine),
           "bare_train_clips_per_s_median": n / statistics.median(bare),
           "engine_data_wait_s": min(e[1] for e in engine),
           "data_only_s": data_only, "compute_only_s": compute_only}
    row["engine_over_bare"] = row["engine_train_clips_per_s"] / row["bare_train_clips_per_s"]
    row["data_over_compute"] = data_only / compute_only
    for k, v in row.items():
        print(f"{k:>26}: {v:.4g}" if isinstance(v, float) else f"{k:>26}: {v}")
    if args.out:
        write_csv(pd.DataFrame([row]), args.out, provenance(vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
