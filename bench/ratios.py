"""Operator speed ratios measured side by side in ONE process (no stored baseline needed).

    python bench/ratios.py --out results/op_ratios.csv            # CPU, 2 threads, R50 layer-2 tensors
    python bench/ratios.py --check                                # exit 1 if a ratio exceeds its bound

Tensors of a ResNet-50 layer-2 block: 8 clips x 8 frames x 256 channels x 28 x 28, float32. Every
candidate is timed in interleaved rounds (A B C ... A B C ...) so that machine noise hits all of them
alike; medians over rounds. Ratios and their bounds (issue "A TIN operator at memory speed"):

    tin op forward            / tsm op forward            <= 1.5
    tin op forward+backward   / tsm op forward+backward   <= 1.5
    interlace forward         / x.clone()                 <= 1.3
    TIN-R50 inference         / TSM-R50 inference         <= 1.10   (--models)
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinlab.measure import timing  # noqa: E402
from tinlab.measure.timing import Setting, interleaved_times  # noqa: E402
from tinlab.ops import interlace, interlace_reference  # noqa: E402

BOUNDS = {
    "tin_fwd/tsm_fwd": 1.5,
    "tin_fwdbwd/tsm_fwdbwd": 1.5,
    "interlace_fwd/clone": 1.3,
    "tin_r50_infer/tsm_r50_infer": 1.10,
}


# tinlab.measure.timing's candidates (forwards under inference_mode, models in eval mode), by the names
# of this script's CSV.
OP_NAMES = {("copy", "infer"): "clone", ("tsm", "infer"): "tsm_fwd", ("tin", "infer"): "tin_fwd",
            ("rtcn", "infer"): "rtcn_fwd", ("tsm", "train"): "tsm_fwdbwd", ("tin", "train"): "tin_fwdbwd"}


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each fn over interleaved rounds (tinlab.measure.timing's timer)."""
    times = interleaved_times(fns, rounds, warmup=1, inner=inner)
    return {k: statistics.median(v) for k, v in times.items()}


def op_candidates(batch: int, frames: int, channels: int, size: int) -> dict[str, Callable[[], object]]:
    setting = Setting(batch=batch, frames=frames)
    ops = timing.op_candidates(setting, ["copy", "tsm", "tin", "rtcn"], channels, size, ["infer", "train"])
    fns = {OP_NAMES[k]: fn for k, fn in ops.items() if k in OP_NAMES}
    torch.manual_seed(0)  # the functional form on its own, against the naive gather
    x5 = torch.randn(batch, frames, channels, size, size)
    offsets = torch.rand(batch, channels // 64) * 4 - 2
    weights = torch.rand(batch, frames, channels // 64) * 2
    fns["interlace_fwd"] = lambda: interlace(x5, offsets, weights)
    fns["interlace_reference_fwd"] = lambda: interlace_reference(x5, offsets, weights)
    return fns


def model_candidates(batch: int, frames: int, size: int) -> dict[str, Callable[[], object]]:
    setting = Setting(batch=batch, frames=frames, size=size, backbone="resnet50", num_classes=174)
    fns, built = timing.model_candidates(setting, ["tsm", "tin"], ["infer"])
    for model in built.values():
        model.eval()
    return {f"{name}_r50_infer": fn for (name, _), fn in fns.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--models", action="store_true", help="also TIN-R50 vs TSM-R50 inference (slow)")
    p.add_argument("--check", action="store_true", help="exit 1 when a ratio exceeds its bound")
    p.add_argument("--out", help="CSV to write the medians and ratios to")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    medians = interleaved_medians(op_candidates(8, 8, 256, 28), args.rounds, inner=3)
    if args.models:
        medians.update(interleaved_medians(model_candidates(1, 8, 224), max(args.rounds // 3, 3), inner=1))
    rows = []
    for key, bound in BOUNDS.items():
        num, den = key.split("/")
        if num in medians and den in medians:
            ratio = medians[num] / medians[den]
            rows.append({"ratio": key, "value": ratio, "bound": bound, "ok": ratio <= bound,
                         "numerator_ms": medians[num] * 1e3, "denominator_ms": medians[den] * 1e3})
    for name, sec in medians.items():
        print(f"{name:26s} {sec * 1e3:9.2f} ms")
    for r in rows:
        print(f"{r['ratio']:30s} {r['value']:6.2f}  (bound {r['bound']})  {'ok' if r['ok'] else 'EXCEEDED'}")
    if args.out:
        import pandas as pd

        from tinlab.utils.io import write_csv
        from tinlab.utils.provenance import provenance
        frame = pd.DataFrame(rows + [{"ratio": f"{k}_ms", "value": v * 1e3} for k, v in medians.items()])
        write_csv(frame, args.out, provenance({"threads": args.threads, "rounds": args.rounds,
                                               "shape": [8, 8, 256, 28, 28], "models": args.models}))
    return 1 if args.check and not all(r["ok"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
