"""The memory traffic of the temporal kernels: bytes each one must move per training step, and the time
that takes at a GPU's memory bandwidth (a floor: the kernels are bandwidth-bound, a few FLOPs per byte).

    python bench/bandwidth_model.py --out results/reference/bandwidth_model.csv [--batch 8 --frames 8]

The shapes are read from the model itself (forward hooks on every temporal module of a ResNet-50 built
on the meta device, 224 px), so the model follows the network. Per temporal block with an input of
x elements (e bytes each) and 1/shift_div of its channels interlaced (F = x / shift_div):

* TSM: the shift reads x and writes x, forward and backward: 2 x e each;
* TIN forward: the interlacing (``tin_interlace``: every row read once and written, the interlaced rows'
  two taps read neighbouring frames, from cache) 2 x e; the descriptor (``tin_descriptor``) reads the fold,
  F e; the nets: N x F x T fp32 values, negligible;
* TIN backward (``tinlab::tin_block``, one autograd node per block): the coefficient gradients read the
  fold's gradient and input, 2 F e; the data gradient (``tin_backward_x``) reads the output's gradient and
  writes the input's, 2 x e, and adds the descriptor's gradient as it writes (N x T x F values, read from
  cache). As two autograd nodes (the nets, then the interlacing) autograd added the two gradients of the
  block's input in a separate pass, 2 x e more: 1.69x TSM's bytes where the fused block moves 1.19x.

Floors are at the nominal HBM bandwidth of an H100 SXM (3.35 TB/s) and an H200 (4.8 TB/s); ``make gpu-check``
measures the interlace kernel against a device copy of the same tensor (what the hardware reaches).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tinlab  # noqa: E402
from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402

BANDWIDTH = {"h100_sxm": 3.35e12, "h200": 4.8e12}  # bytes/s, nominal
BYTES = {"bfloat16": 2, "float32": 4}

# (kernel, pass, bytes per block in units of (x, F) elements: coefficient of x, coefficient of F)
TRAFFIC = {
    "tsm": [("temporal_shift", "forward", 2, 0), ("temporal_shift", "backward", 2, 0)],
    "tin": [("tin_interlace", "forward", 2, 0), ("tin_descriptor", "forward", 0, 1),
            ("tin_backward_coefficients", "backward", 0, 2), ("tin_backward_x", "backward", 2, 0)],
}


def block_shapes(model_name: str, frames: int, batch: int) -> list[tuple[int, int]]:
    """(x elements, interlaced/shifted-fold elements) of every temporal block of a ResNet-50 at 224 px."""
    with torch.device("meta"):
        model = tinlab.create_model(model_name, backbone="resnet50", num_classes=174, num_segments=frames).eval()
        clip = torch.empty(batch, frames, 3, 224, 224)
    shapes = []
    for module in model.modules():
        if type(module).__name__ in ("TemporalShift", "TemporalInterlace"):
            module.register_forward_hook(lambda m, i, o: shapes.append(
                (i[0].numel(), i[0].numel() // i[0].shape[1] * getattr(m, "fold", 0))))
    with torch.no_grad():
        model(clip)
    return shapes


def model_table(batch: int, frames: int, dtype: str) -> pd.DataFrame:
    rows = []
    for name, kernels in TRAFFIC.items():
        shapes = block_shapes(name, frames, batch)
        x_total = sum(x for x, _ in shapes)
        f_total = sum(f for _, f in shapes)
        for kernel, pass_, per_x, per_f in kernels:
            nbytes = (per_x * x_total + per_f * f_total) * BYTES[dtype]
            rows.append({"model": name, "kernel": kernel, "pass": pass_, "blocks": len(shapes),
                         "megabytes": nbytes / 1e6,
                         **{f"floor_us_{gpu}": nbytes / bw * 1e6 for gpu, bw in BANDWIDTH.items()}})
    table = pd.DataFrame(rows)
    totals = table.groupby("model", sort=False)[["megabytes"] + [f"floor_us_{g}" for g in BANDWIDTH]].sum()
    for name, total in totals.iterrows():
        rows.append({"model": name, "kernel": "total", "pass": "step", "blocks": table.blocks[table.model == name].iloc[0],
                     **total.to_dict()})
    out = pd.DataFrame(rows)
    out.insert(0, "batch", batch)
    out.insert(1, "frames", frames)
    out.insert(2, "dtype", dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--dtype", choices=sorted(BYTES), default="bfloat16")
    args = parser.parse_args(argv)
    table = model_table(args.batch, args.frames, args.dtype)
    write_csv(table.round(3), args.out, provenance({"batch": args.batch, "frames": args.frames, "dtype": args.dtype,
                                                     "bandwidth_bytes_per_s": BANDWIDTH}))
    total = table[table.kernel == "total"].set_index("model")
    print(table.round(1).to_string(index=False))
    print(f"TIN / TSM bytes per step: {total.megabytes['tin'] / total.megabytes['tsm']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
