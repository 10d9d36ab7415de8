"""tinlab's ``tadav2`` against the official TAdaConvV2 code, in float64, forward and gradients.

Needs a checkout of https://github.com/alibaba-mmai-research/TAdaConv (not shipped, not a dependency):
this script loads its three source files (``ops/tadaconv_v2.py``, ``ops/misc.py``, ``utils/init_helper.py``)
by path, without importing the rest of that package (it needs torchvision and more). Nothing of it is
copied into tinlab or imported by tinlab or its tests.

The official operator is run as its TAdaConvNeXtV2 block runs it: an external ``RouteFuncwTransformer``
(``zero_init_cal=True``) whose output is passed as ``alpha`` to ``TAdaConv2dV2(internal_rf_func=False)``, with
the internal temporal aggregation ``bn_a(y) + bn_b(AvgPool_t(y))`` on (as on TAda2D's ResNet). Every weight is
randomised (``b`` and ``b_bias`` too, so the calibration is not the identity; BatchNorm running statistics
too) and copied into tinlab's ``tadav2_block`` with :func:`tinlab.ops.tadav2.from_official`. Each case
compares the outputs and the gradients of a random loss w.r.t. the input and every parameter; the official
convolution has no spatial stride (its output ``view`` uses the input's H, W), so stride 1 only here (stride
2 is checked against tinlab's own per-frame reference in ``tests/ops/test_tadav2.py``).

    python bench/official_tadav2.py --official /path/to/TAdaConv --official-version <commit> \
        --out results/reference/tadav2_official.csv
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import types
from pathlib import Path

import pandas as pd
import torch

from tinlab.ops.tadav2 import from_official, tadav2_block
from tinlab.utils.io import write_csv
from tinlab.utils.provenance import provenance


def load_official(root: Path) -> types.ModuleType:
    """The official ``tadaconv_v2`` module, loaded from ``root`` with only the two files it imports."""
    base = root / "tadaconv" / "models"
    files = {"tadaconv.models.utils.init_helper": base / "utils" / "init_helper.py",
             "tadaconv.models.module_zoo.ops.misc": base / "module_zoo" / "ops" / "misc.py",
             "tadaconv.models.module_zoo.ops.tadaconv_v2": base / "module_zoo" / "ops" / "tadaconv_v2.py"}
    for path in files.values():
        if not path.is_file():
            raise SystemExit(f"{path} not found: --official must be a checkout of alibaba-mmai-research/TAdaConv")
    for package in ("tadaconv", "tadaconv.models", "tadaconv.models.utils", "tadaconv.models.module_zoo",
                    "tadaconv.models.module_zoo.ops"):
        module = types.ModuleType(package)
        module.__path__ = []  # a namespace that holds only what is loaded below
        sys.modules.setdefault(package, module)
    for name, path in files.items():
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["tadaconv.models.module_zoo.ops.tadaconv_v2"]


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.3)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator, dtype=b.dtype) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator, dtype=b.dtype) + 0.5)


def one_case(official: types.ModuleType, *, channels: int, rf_r: int, head_dim: int, official_head_dim: int,
             frames: int, cal_dim: str, bias: bool, train: bool, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    route = official.RouteFuncwTransformer(c_in=channels, ratio=rf_r, kernels=[3, 3], with_bias_cal=bias,
                                           zero_init_cal=True, head_dim=official_head_dim).double()
    conv = official.TAdaConv2dV2(channels, channels, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=bias,
                                 cal_dim=cal_dim, internal_rf_func=False, internal_temp_aggr=True).double()
    randomise(route, g)
    randomise(conv, g)
    ours_conv, ours_norm = tadav2_block(channels, channels, frames, rf_r=rf_r, head_dim=head_dim, bias=bias,
                                        cal_dim=cal_dim)
    ours_conv, ours_norm = ours_conv.double(), ours_norm.double()
    from_official(ours_conv, {**conv.state_dict(), **{f"rf_func.{k}": v for k, v in route.state_dict().items()}},
                  ours_norm)
    for m in (route, conv, ours_conv, ours_norm):
        m.train(train)
    b, h, w = 2, 7, 6
    x5 = torch.randn(b, channels, frames, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    x4 = x5.detach().transpose(1, 2).reshape(b * frames, channels, h, w).clone().requires_grad_(True)
    theirs = conv(x5, reshape_required=False, alpha=route(x5))  # (B, C, T, H, W)
    ours = ours_norm(ours_conv(x4)).view(b, frames, channels, h, w).transpose(1, 2)
    upstream = torch.randn(theirs.shape, generator=g, dtype=torch.float64)
    (theirs * upstream).sum().backward()
    (ours * upstream).sum().backward()
    grads_theirs = {**{f"rf_func.{k}": p.grad for k, p in route.named_parameters()},
                    **{k: p.grad for k, p in conv.named_parameters()}}
    grads_ours = dict(zip(sorted(grads_theirs), [None] * len(grads_theirs)))
    own = {**{f"conv.{k}": p for k, p in ours_conv.named_parameters()},
           **{f"norm.{k}": p for k, p in ours_norm.named_parameters()}}
    rename = {"rf_func.": "conv.rf.", "weight": "conv.weight", "bias": "conv.bias", "bn_a.": "norm.",
              "bn_b.": "norm.temporal."}
    for key in grads_theirs:
        prefix = next(p for p in rename if key.startswith(p))
        grads_ours[key] = own[rename[prefix] + key[len(prefix):]].grad
    param_err = max(float((grads_ours[k].reshape(-1) - grads_theirs[k].reshape(-1)).abs().max()) for k in grads_theirs)
    scale = max(float(t.abs().max()) for t in grads_theirs.values())
    return {"channels": channels, "rf_r": rf_r, "head_dim": head_dim, "official_head_dim": official_head_dim,
            "heads": ours_conv.rf.heads, "frames": frames,
            "cal_dim": cal_dim, "bias": bias, "mode": "train" if train else "eval",
            "out_max_abs": float(theirs.detach().abs().max()),
            "out_err": float((ours - theirs).detach().abs().max()),
            "grad_x_err": float((x4.grad.view(b, frames, channels, h, w).transpose(1, 2) - x5.grad).abs().max()),
            "grad_params_err": param_err, "grad_params_max_abs": scale, "parameters": len(grads_theirs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of alibaba-mmai-research/TAdaConv")
    parser.add_argument("--official-version", default="", help="the checkout's commit, recorded in the provenance")
    parser.add_argument("--out", type=Path, help="CSV of the cases (with provenance)")
    args = parser.parse_args(argv)
    official = load_official(args.official)
    rows = []
    # (channels, rf_r, head_dim, the official head_dim): 1, 2 and 4 heads; and a routing narrower than
    # head_dim (16 < 64), where the official code fails and tinlab uses one head of the routing's width.
    widths = [(32, 2, 16, 16), (32, 2, 8, 8), (32, 2, 4, 4), (64, 4, 64, 16)]
    cases = itertools.product(widths, [8, 16], ["cin", "cout"], [False, True], [True, False])
    for seed, ((channels, rf_r, head_dim, official_head_dim), frames, cal_dim, bias, train) in enumerate(cases):
        rows.append(one_case(official, channels=channels, rf_r=rf_r, head_dim=head_dim,
                             official_head_dim=official_head_dim, frames=frames, cal_dim=cal_dim, bias=bias,
                             train=train, seed=seed))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    worst = table[["out_err", "grad_x_err", "grad_params_err"]].max()
    print(f"\nmax errors over {len(table)} cases: output {worst.out_err:.3g}, input gradient {worst.grad_x_err:.3g}, "
          f"parameter gradients {worst.grad_params_err:.3g}")
    if args.out:
        write_csv(table, args.out, {**provenance({"official": str(args.official), "official_version": args.official_version}, torch.device("cpu")),
                                    "command": "python bench/official_tadav2.py " + " ".join(argv or sys.argv[1:])})
    return 0 if (worst < 1e-10).all() else 1


if __name__ == "__main__":
    sys.exit(main())
