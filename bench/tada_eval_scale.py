"""Why TAda2D's evaluation can diverge while its training does not, measured epoch by epoch.

Trains a TAdaConv model (``tada``, with each ``--route-norms`` value; or ``tadav2``) from a run config and,
after every epoch, on the same validation clips:

* per TAda block: the largest calibration factor |alpha| and the RMS of the block's output, once in train
  mode (BatchNorms normalise with the batch's statistics) and once in eval mode (running statistics: every
  BatchNorm a fixed affine map), and ``log10_eval_over_train`` of the block outputs' RMS;
* over the whole validation split: loss and top-1 in eval mode as trained; with **precise BN** (every
  BatchNorm's running statistics recomputed as population statistics over ``--precise-batches`` training
  batches, model in train mode without gradients); and with only the routing functions' BatchNorms using
  batch statistics (``route BN batch stats``).

The measurements run under ``torch.random.fork_rng``: the training draws the random numbers it would draw
without them, so a route norm's trajectory is that of ``tinlab train`` with the same config (the workflow's
run of that seed; its validation every ``run.validate_every`` epochs draws none either).

Writes ``<out>/epochs.csv`` (one row per route norm and epoch) and ``<out>/blocks.csv`` (per block), with
provenance. ``--generate`` makes the dataset first (the synthetic-motion generator's parameters, JSON), so
another recipe's data can be reproduced, e.g. the recipe before the calibrated one::

    python bench/tada_eval_scale.py --config results/runs/configs/tada_T8_synthetic-motion.yaml \\
        --set data.root=/tmp/motion64 --set data.input_size=48 --set data.batch_size=8 --set optim.lr=0.02 \\
        --set optim.schedule=step --set optim.milestones=[14,18] --set optim.warmup_epochs=1 \\
        --generate '{"num_train": 384, "num_val": 144, "size": 64}' --epochs 5 --out results/reference/tada_eval/previous
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from tinlab.data import normalize_clips
from tinlab.engine.config import load_config
from tinlab.engine.loop import Trainer
from tinlab.engine.runtime import set_threads
from tinlab.ops.tada import TAdaConv2d
from tinlab.ops.tadav2 import TAdaConv2dV2
from tinlab.utils.io import write_csv
from tinlab.utils.provenance import provenance


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(name, block, its TAdaConv) for every residual block that holds one, in network order."""
    out = []
    for name, block in model.backbone.named_modules():
        convs = [m for m in block.children() if isinstance(m, (TAdaConv2d, TAdaConv2dV2))]
        if convs:
            out.append((name, block, convs[0]))
    return out


@torch.no_grad()
def block_stats(model: nn.Module, clips: torch.Tensor, train: bool) -> list[dict]:
    """Largest |alpha| and output RMS per TAda block on ``clips``, in train or eval mode (on a copy: a
    train-mode forward would move the running statistics)."""
    model = copy.deepcopy(model).train(train)
    seen: dict[str, dict] = {}
    hooks = []
    for name, block, conv in _blocks(model):
        route = conv.route if isinstance(conv, TAdaConv2d) else conv.rf
        hooks.append(route.register_forward_hook(
            lambda m, i, o, name=name: seen.setdefault(name, {}).update(
                alpha_max=float((o[0] if isinstance(o, tuple) else o).abs().max()))))
        hooks.append(block.register_forward_hook(
            lambda m, i, o, name=name: seen.setdefault(name, {}).update(rms=float(o.double().pow(2).mean().sqrt()))))
    model(clips)
    for h in hooks:
        h.remove()
    return [{"block": name, **values} for name, values in seen.items()]


@torch.no_grad()
def validate(model: nn.Module, loader, *, route_batch_stats: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, top-1 %) over the validation split in eval mode; non-finite values as they come."""
    model.eval()
    if route_batch_stats:
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm1d) and ".route." in f".{name}.":
                m.train()
    loss, correct, n = 0.0, 0, 0
    for clips, labels in loader:
        logits = model(normalize_clips(clips)).double()
        loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        n += len(labels)
    return loss / n, 100 * correct / n


@torch.no_grad()
def precise_bn(model: nn.Module, loader, batches: int) -> nn.Module:
    """A copy whose BatchNorm running statistics are the population statistics of ``batches`` training
    batches (cumulative average, momentum None), computed in train mode without gradients."""
    model = copy.deepcopy(model)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i, (clips, _) in enumerate(loader):
        if i >= batches:
            break
        model(normalize_clips(clips))
    return model


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def study(args: argparse.Namespace, route_norm: str | None) -> tuple[list[dict], list[dict]]:
    overrides = list(args.overrides) + ([f"model.options.route_norm={route_norm}"] if route_norm else [])
    cfg = load_config(args.config, overrides)
    set_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    trainer = Trainer(cfg)
    label = route_norm or "-"
    clips = normalize_clips(next(iter(trainer.val_loader))[0])
    epochs, blocks = [], []
    for epoch in range(min(args.epochs or cfg.optim.epochs, cfg.optim.epochs)):
        stats = trainer.train_epoch(epoch)
        with torch.random.fork_rng():  # measuring draws no random number the training would have drawn
            epochs_row, block_rows = measure(args, trainer, clips, label, epoch, stats)
        epochs.append(epochs_row)
        blocks += block_rows
        print(json.dumps(epochs[-1]), flush=True)
    return epochs, blocks


def measure(args: argparse.Namespace, trainer: Trainer, clips: torch.Tensor, label: str, epoch: int,
            stats: dict) -> tuple[dict, list[dict]]:
    """One epoch's row of epochs.csv and rows of blocks.csv (module doc)."""
    blocks = []
    model = trainer.model
    train_blocks, eval_blocks = block_stats(model, clips, True), block_stats(model, clips, False)
    for tr, ev in zip(train_blocks, eval_blocks):
        ratio = ev["rms"] / tr["rms"] if tr["rms"] > 0 else math.inf
        blocks.append({"route_norm": label, "epoch": epoch + 1, "block": tr["block"],
                       "alpha_max_train": tr["alpha_max"], "alpha_max_eval": _finite(ev["alpha_max"]),
                       "rms_train": tr["rms"], "rms_eval": _finite(ev["rms"]),
                       "log10_eval_over_train": _finite(math.log10(ratio) if ratio > 0 else -math.inf)})
    eval_loss, eval_top1 = validate(model, trainer.val_loader)
    precise_loss, precise_top1 = validate(precise_bn(model, trainer.train_loader, args.precise_batches),
                                          trainer.val_loader)
    route_loss, route_top1 = validate(copy.deepcopy(model), trainer.val_loader, route_batch_stats=True)
    model.train()
    row = {"route_norm": label, "epoch": epoch + 1, "train_loss": stats["loss"], "train_top1": 100 * stats["top1"],
           "val_loss_eval": _finite(eval_loss), "val_top1_eval": eval_top1,
           "val_loss_precise_bn": _finite(precise_loss), "val_top1_precise_bn": precise_top1,
           "val_loss_route_bn_batch_stats": _finite(route_loss), "val_top1_route_bn_batch_stats": route_top1,
           "alpha_max_train": max(b["alpha_max"] for b in train_blocks),
           "alpha_max_eval": _finite(max(b["alpha_max"] for b in eval_blocks))}
    return row, blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="a tada/tadav2 run config (results/runs/configs/...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--route-norms", nargs="+", default=["batchnorm", "layernorm"],
                        help="tada's route_norm values to train (ignored for tadav2)")
    parser.add_argument("--epochs", type=int, default=None, help="stop after this many epochs (default: all)")
    parser.add_argument("--precise-batches", type=int, default=32)
    parser.add_argument("--generate", help="generate the synthetic-motion data at data.root first (JSON parameters)")
    parser.add_argument("--out", type=Path, required=True, help="folder for epochs.csv and blocks.csv")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.generate:
        from tinlab.data.synthetic import generate

        generate("synthetic-motion", cfg.data.root, **json.loads(args.generate))
    norms = args.route_norms if cfg.model.name == "tada" else [None]
    epochs, blocks = [], []
    for norm in norms:
        e, b = study(args, norm)
        epochs += e
        blocks += b
    prov = {**provenance({"config": args.config, "overrides": args.overrides, "generate": args.generate,
                          "precise_batches": args.precise_batches}, torch.device("cpu")),
            "command": "python bench/tada_eval_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    write_csv(pd.DataFrame(epochs), args.out / "epochs.csv", prov)
    write_csv(pd.DataFrame(blocks), args.out / "blocks.csv", prov)
    return 0


if __name__ == "__main__":
    sys.exit(main())
