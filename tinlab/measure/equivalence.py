"""TIN == r-TCN, verified numerically (paper Sec. 4), forward and backward.

Two kinds of case, one row each in ``results/equivalence.csv``:

* ``functional``: :func:`tinlab.ops.interlace` against :func:`tinlab.ops.rtcn` on random clips with
  random offsets over the whole clip (|O| < T) and random frame
  weights; errors of the output and of the gradients w.r.t. x, offsets and weights.
* ``model``: a whole ``tin`` recogniser against an ``rtcn`` recogniser loaded with its state_dict,
  OffsetNet biases randomised so the offsets spread over (-offset_range, offset_range); errors of the
  logits, of the input gradient and of every parameter's gradient (the worst parameter reported).

Errors: ``*_abs`` = max |a - b|, ``*_rel`` = max |a - b| / max |b| (parameter gradients: over all
parameters at once). Bounds (``passed``): float64 abs <= 1e-12 and float32 rel <= 1e-5 for every
quantity.

Float32 model rows run with every ReLU replaced by softplus(beta=4) (column ``activation``): a ReLU
pre-activation within float32 rounding of zero goes different ways in the two networks and flips a
gradient discretely (seen here: 2 of 24 float32 model cases at 1e-3, all within 1e-5 once smooth).
That is float32 ReLU arithmetic, not a difference between TIN and r-TCN; float64 rows keep the ReLU.
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import Tensor

from ..ops import interlace, rtcn

BOUNDS = {torch.float64: ("abs", 1e-12), torch.float32: ("rel", 1e-5)}


def _errors(prefix: str, a: Tensor, b: Tensor) -> dict[str, float]:
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    return {f"{prefix}_abs": diff, f"{prefix}_rel": diff / scale if scale > 0 else diff}


@dataclass(frozen=True)
class Case:
    kind: str  # "functional" | "model"
    num_segments: int
    groups: int
    reverse: bool
    boundary: str
    dtype: torch.dtype

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_segments": self.num_segments, "groups": self.groups,
                "reverse": self.reverse, "boundary": self.boundary, "dtype": str(self.dtype).split(".")[-1]}


def functional_case(case: Case, *, batch: int = 2, group_channels: int = 2, size: int = 5,
                    seed: int = 0) -> dict[str, float]:
    """Errors of interlace vs rtcn on random data (see module doc)."""
    gen = torch.Generator().manual_seed(seed)
    t, g = case.num_segments, case.groups
    total = g * (2 if case.reverse else 1)
    opts = {"dtype": case.dtype}
    x = torch.randn(batch, t, total * group_channels, size, size, generator=gen, **opts)
    learned = (torch.rand(batch, g, generator=gen, **opts) * 2 - 1) * t
    weights = torch.rand(batch, t, g, generator=gen, **opts) * 2
    learned.requires_grad_(), weights.requires_grad_(), x.requires_grad_()
    offsets = torch.cat([learned, -learned], 1) if case.reverse else learned
    w = torch.cat([weights, weights], 2) if case.reverse else weights
    y_tin = interlace(x, offsets, w, case.boundary)
    y_rtcn = rtcn(x, offsets, w, case.boundary)
    upstream = torch.randn(y_tin.shape, generator=gen, **opts)
    grads_tin = torch.autograd.grad(y_tin, (x, learned, weights), upstream)
    grads_rtcn = torch.autograd.grad(y_rtcn, (x, learned, weights), upstream)
    out = _errors("forward", y_tin, y_rtcn)
    for name, a, b in zip(("grad_x", "grad_offsets", "grad_weights"), grads_tin, grads_rtcn):
        out.update(_errors(name, a, b))
    return out


def model_case(case: Case, *, batch: int = 2, size: int = 8, num_classes: int = 5, seed: int = 0,
               model_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """Errors of a tin recogniser vs an rtcn recogniser sharing its state_dict (see module doc)."""
    from .. import create_model

    kwargs = {"backbone": "resnet18", "width_mult": 0.5, "small_stem": True, "dropout": 0.0,
              **(model_kwargs or {})}
    torch.manual_seed(seed)
    opts = dict(num_classes=num_classes, num_segments=case.num_segments, groups=case.groups,
                reverse=case.reverse, boundary=case.boundary, **kwargs)
    tin = create_model("tin", **opts).to(case.dtype)
    if case.dtype != torch.float64:
        _smooth_relus(tin)
    with torch.no_grad():  # spread the offsets over the whole range instead of all near +0.5
        for _, m in tin.interlace_modules():
            m.offset_net.fc2.bias.uniform_(-3, 3)
    rtcn_model = create_model("rtcn", **opts).to(case.dtype)
    if case.dtype != torch.float64:
        _smooth_relus(rtcn_model)
    rtcn_model.load_state_dict(tin.state_dict())
    gen = torch.Generator().manual_seed(seed)
    clips = torch.randn(batch, case.num_segments, 3, size, size, generator=gen, dtype=case.dtype)
    upstream = torch.randn(batch, num_classes, generator=gen, dtype=case.dtype)
    results = []
    for model in (tin, rtcn_model):
        model.train()
        x = clips.clone().requires_grad_()
        logits = model(x)
        params = [p for _, p in model.named_parameters()]
        grads = torch.autograd.grad(logits, [x, *params], upstream)
        results.append((logits, grads[0], grads[1:]))
    out = _errors("forward", results[0][0], results[1][0])
    out.update(_errors("grad_x", results[0][1], results[1][1]))
    out.update(_errors("grad_params", torch.cat([g.flatten() for g in results[0][2]]),
                       torch.cat([g.flatten() for g in results[1][2]])))
    out["activation"] = "relu" if case.dtype == torch.float64 else "softplus4"
    return out


def _smooth_relus(model: torch.nn.Module) -> None:
    """Replace every nn.ReLU by softplus(beta=4), in place (see module doc)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, torch.nn.Softplus(beta=4))


def cases(num_segments: Iterable[int] = (8, 16), groups: Iterable[int] = (1, 2, 4),
          kinds: Iterable[str] = ("functional", "model")) -> list[Case]:
    return [Case(k, t, g, r, b, d) for k, t, g, r, b, d in itertools.product(
        kinds, num_segments, groups, (True, False), ("zero", "clamp"), (torch.float64, torch.float32))]


def passed(case: Case, errors: dict[str, float]) -> bool:
    kind, bound = BOUNDS[case.dtype]
    return all(v <= bound for k, v in errors.items() if k.endswith(f"_{kind}"))


def run_equivalence(case_list: list[Case] | None = None, seed: int = 0) -> "pandas.DataFrame":  # noqa: F821
    """One row per case: the case, every error, and whether it is within its bound."""
    import pandas as pd

    rows = []
    for i, case in enumerate(case_list or cases()):
        fn = functional_case if case.kind == "functional" else model_case
        errors = fn(case, seed=seed + i)
        rows.append({**case.describe(), **errors, "passed": passed(case, errors)})
    return pd.DataFrame(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/equivalence.csv", help="CSV to write")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16], help="values of T")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4], help="offset groups G")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_csv
    from ..utils.provenance import provenance

    frame = run_equivalence(cases(args.frames, args.groups), seed=args.seed)
    write_csv(frame, args.out, provenance({"frames": args.frames, "groups": args.groups, "seed": args.seed,
                                           "bounds": {"float64": "abs <= 1e-12",
                                                      "float32": "rel <= 1e-5"}}))
    cols = ["kind", "num_segments", "groups", "reverse", "boundary", "dtype", "forward_abs", "forward_rel",
            "grad_x_abs", "grad_offsets_abs", "grad_weights_abs", "grad_params_abs", "passed"]
    print(frame[[c for c in cols if c in frame]].to_string(index=False, float_format="%.1e"))
    failed = int((~frame["passed"]).sum())
    print(f"{len(frame) - failed}/{len(frame)} cases within bounds -> {args.out}")
    return 1 if failed else 0
