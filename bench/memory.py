"""Memory of one forward+backward pass of each temporal op (CPU), R50 layer-2 tensors.

    python bench/memory.py --out results/op_memory_cpu.csv

Two figures per op, each measured in a fresh subprocess so that one op's allocations cannot hide
another's:

* ``saved_mib``: bytes autograd keeps between forward and backward (saved_tensors_hooks), the input
  itself counted once. TIN should keep the input and small tensors only; TSM nothing.
* ``peak_mib``: increase of the process's peak resident memory (``ru_maxrss``) during one
  forward+backward over the state right before it (input, upstream gradient and op already built
  and warmed up on a small tensor). CPU PyTorch has no allocator peak counter; RSS includes freed
  pages the allocator keeps, so read it as an upper bound.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPS = ["tsm", "tin", "tin_torch_path", "tin_gather_reference", "rtcn"]

_CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from tinlab.ops import create_temporal_op, interlace_reference
from tinlab.ops import tin as tin_module
from tinlab.ops._kernel import torch_path
torch.set_num_threads(2)
name = {name!r}
n, t, c, s = 8, 8, 256, 28
op = create_temporal_op("tsm" if name == "tsm" else ("rtcn" if name == "rtcn" else "tin"), c, t)
ctx = torch_path() if name == "tin_torch_path" else torch.enable_grad()
if name == "tin_gather_reference":  # TIN's fold shifted by the naive gather instead of the fused op
    op.aggregate = lambda rows, z, v: op.aggregate_fold(rows, lambda f: interlace_reference(
        f, *op._offsets_and_weights(z, v), op.boundary))
with ctx:
    small = torch.randn(2 * t, c, 4, 4, requires_grad=True)
    op(small).sum().backward()  # warm-up: kernels built, libraries loaded
    x = torch.randn(n * t, c, s, s, requires_grad=True)
    grad = torch.randn_like(x)
    # The peak first: ru_maxrss is a high-water mark, so nothing bigger than x may have run before it.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    op(x).backward(grad)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda v: saved.append(v) or v, lambda v: v):
        y = op(x)
    storages = {{v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in saved}}
    saved_bytes = sum(storages.values())
print(json.dumps({{"saved_bytes": saved_bytes, "peak_kib": peak - before, "input_bytes": x.numel() * 4}}))
"""


def measure(name: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD.format(root=str(ROOT), name=name)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="CSV to write")
    args = p.parse_args(argv)
    rows = []
    for name in OPS:
        m = measure(name)
        rows.append({"op": name, "saved_mib": m["saved_bytes"] / 2**20, "peak_mib": m["peak_kib"] / 1024,
                     "input_mib": m["input_bytes"] / 2**20})
    tsm = next(r for r in rows if r["op"] == "tsm")
    for r in rows:
        r["peak_vs_tsm"] = r["peak_mib"] / tsm["peak_mib"]
        print(f"{r['op']:22s} saved {r['saved_mib']:8.1f} MiB   peak +{r['peak_mib']:8.1f} MiB   "
              f"({r['peak_vs_tsm']:.2f}x TSM; input {r['input_mib']:.1f} MiB)")
    if args.out:
        import pandas as pd

        sys.path.insert(0, str(ROOT))
        from tinlab.utils.io import write_csv
        from tinlab.utils.provenance import provenance
        write_csv(pd.DataFrame(rows), args.out, provenance({"shape": [8, 8, 256, 28, 28], "threads": 2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
