"""GFLOPs per video (one view) and parameters of every model, at paper scale by default.

``python -m tinlab complexity --out results/complexity.csv`` counts ResNet-50, 224x224, 8 and 16
frames, 174 (Something-Something) and 400 (Kinetics) classes, with :func:`tinlab.measure.cost`.
Published figures, where the papers or official code give one, stand beside the measured ones with their source.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from .. import create_model, list_models
from .cost import flop_analysis, parameters

# (model, backbone, frames, classes) -> (published GFLOPs, published params in M, source)
_TSM_R50 = "TSM repository README / MMAction2 model zoo (8 x 4.11 G per 224x224 frame)"
PUBLISHED: dict[tuple[str, str, int, int], tuple[float | None, float | None, str]] = {
    ("tsn", "resnet50", 8, 174): (32.9, 23.9, _TSM_R50),
    ("tsm", "resnet50", 8, 174): (32.9, 23.9, _TSM_R50),
    ("tsn", "resnet50", 8, 400): (32.9, 24.3, _TSM_R50),
    ("tsm", "resnet50", 8, 400): (32.9, 24.3, _TSM_R50),
    ("tsn", "resnet50", 16, 174): (65.8, 23.9, _TSM_R50 + "; 16 frames = 2 x 8 frames"),
    ("tsm", "resnet50", 16, 174): (65.8, 23.9, _TSM_R50 + "; 16 frames = 2 x 8 frames"),
}


def complexity_row(name: str, *, backbone: str = "resnet50", num_segments: int = 8, num_classes: int = 174,
                   input_size: int = 224, **model_kwargs: Any) -> dict[str, Any]:
    """One row: measured GFLOPs (one view: 1 clip x 1 crop) and parameters of one model."""
    torch.manual_seed(0)
    model = create_model(name, backbone=backbone, num_classes=num_classes, num_segments=num_segments,
                         **model_kwargs)
    clip = torch.zeros(1, num_segments, 3, input_size, input_size)
    with torch.no_grad():
        analysis = flop_analysis(model, clip)
    if analysis.unsupported_ops():
        raise RuntimeError(f"{name}: ops without a FLOP handle: {dict(analysis.unsupported_ops())}")
    by_op = analysis.by_operator()
    published = PUBLISHED.get((name, backbone, num_segments, num_classes), (None, None, ""))
    return {
        "model": name, "backbone": backbone, "frames": num_segments, "input_size": input_size,
        "num_classes": num_classes, "views": 1,
        "gflops": analysis.total() / 1e9, "params": parameters(model), "params_m": parameters(model) / 1e6,
        "conv_linear_gflops": (by_op.get("conv", 0) + by_op.get("linear", 0)) / 1e9,
        "published_gflops": published[0], "published_params_m": published[1], "published_source": published[2],
    }


def run_complexity(models: list[str], frames: list[int], classes: list[int], backbone: str = "resnet50",
                   input_size: int = 224, **model_kwargs: Any) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    models = ["tsn", *[m for m in models if m != "tsn"]]  # TSN first: the others are reported against it
    frame = pd.DataFrame([complexity_row(m, backbone=backbone, num_segments=t, num_classes=k,
                                         input_size=input_size, **model_kwargs)
                          for k in classes for t in frames for m in models])
    tsn = frame[frame.model == "tsn"].set_index(["frames", "num_classes"])
    key = list(zip(frame.frames, frame.num_classes))
    frame.insert(7, "extra_gflops_vs_tsn", frame.gflops.to_numpy() - tsn.loc[key, "gflops"].to_numpy())
    frame.insert(10, "extra_params_vs_tsn", frame.params.to_numpy() - tsn.loc[key, "params"].to_numpy())
    return frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/complexity.csv", help="CSV to write")
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--classes", type=int, nargs="+", default=[174, 400])
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--small-stem", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_csv
    from ..utils.provenance import provenance

    config = {k: v for k, v in vars(args).items() if k not in ("out", "command")}
    frame = run_complexity(args.models, args.frames, args.classes, args.backbone, args.input_size,
                           width_mult=args.width_mult, small_stem=args.small_stem)
    write_csv(frame, args.out, provenance(config))
    cols = ["model", "backbone", "frames", "num_classes", "gflops", "extra_gflops_vs_tsn", "params",
            "published_gflops", "published_params_m"]
    print(frame[cols].to_string(index=False, float_format="%.3f"))
    print(f"-> {args.out}")
    return 0
