"""Everything a run config builds: the model, the datasets and loaders, parameter groups, the schedule.

Each builder takes the validated :class:`~tinlab.engine.config.Config` (or one of its sections) and
returns a ready object; bad combinations are :class:`~tinlab.errors.ConfigError` naming the key.

Example (reads a dataset)::

    cfg = load_config("run.yaml")
    model = build_model(cfg)                             # seeded by the caller for a fixed init
    train_set = build_split(cfg, "train")
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, iters_per_epoch=len(train_loader), o=cfg.optim)
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import build_dataset, get_preset
from ..errors import ConfigError, UserError
from ..models import Recognizer, create_model
from .config import Config, OptimConfig

__all__ = ["build_model", "build_optimizer", "build_scheduler", "build_split", "frozen_batchnorms", "lr_factor",
           "num_classes_of", "param_groups"]


def num_classes_of(cfg: Config) -> int:
    """The class count of the config's dataset preset (``data.preset.num_classes`` overrides it)."""
    preset = get_preset(cfg.data.dataset, **cfg.data.preset)
    if preset.num_classes is None:
        raise ConfigError(f"dataset {cfg.data.dataset!r} has no class count: set data.preset.num_classes")
    return preset.num_classes


def build_model(cfg: Config) -> Recognizer:
    """The recogniser a config describes (seed first for a reproducible initialisation)."""
    m = cfg.model
    try:
        return create_model(m.name, backbone=m.backbone, num_classes=num_classes_of(cfg),
                            num_segments=cfg.data.num_segments, dropout=m.dropout, width_mult=m.width_mult,
                            small_stem=m.small_stem, pretrained=m.pretrained, **m.options)
    except UserError:  # a pretrained checkpoint's own error names its file
        raise
    except (TypeError, ValueError) as e:  # an op option the model does not take, or a bad combination
        raise ConfigError(f"model.options {m.options!r} for model {m.name!r} ({m.backbone}, width "
                          f"{m.width_mult}): {e}") from None


def build_split(cfg: Config, split: str, views: bool = False, check_files: bool | None = None):
    """The ``train`` or ``val`` dataset; ``views`` = the config's test clips x crops (evaluation);
    ``check_files`` (default ``data.check_files``) checks every listed frame up front."""
    d = cfg.data
    check = d.check_files if check_files is None else check_files
    if not Path(d.root).is_dir():
        raise ConfigError(f"data.root = {d.root!r}: dataset folder {d.root} does not exist")
    try:
        dataset = build_dataset(d.dataset, d.root, split=split, num_segments=d.num_segments,
                                input_size=d.input_size, seed=cfg.run.seed, scale_size=d.scale_size,
                                test_clips=d.test_clips if views else 1, test_crops=d.test_crops if views else 1,
                                **d.preset)
    except TypeError as e:
        raise ConfigError(f"data.preset {d.preset!r}: {e}") from None
    except UserError:
        raise
    except ValueError as e:  # e.g. 10-crop testing on a dataset that must not be flipped
        raise ConfigError(f"data ({d.dataset}, test_crops={d.test_crops}): {e}") from None
    if check:
        dataset.check_files(progress=True)
    return dataset


def lr_factor(step: int, iters_per_epoch: int, o: OptimConfig) -> float:
    """Multiplier of the base lr at global iteration ``step``: linear warm-up, then step or cosine.

    Example:
        >>> from tinlab.engine.config import load_config
        >>> o = load_config(None).optim          # paper: x0.1 at epochs 10 and 20
        >>> [round(lr_factor(e * 100, 100, o), 4) for e in (0, 9, 10, 20)]
        [1.0, 1.0, 0.1, 0.01]
    """
    epoch = step / iters_per_epoch
    warm = o.warmup_epochs * iters_per_epoch
    if step < warm:
        return (step + 1) / warm
    if o.schedule == "step":
        return o.lr_gamma ** sum(epoch >= m for m in o.milestones)
    progress = (epoch - o.warmup_epochs) / max(o.epochs - o.warmup_epochs, 1e-8)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# The trunk's own BatchNorms (what a pretrained ResNet brings): the stem's, a block's bnK, a shortcut's.
_TRUNK_BN = re.compile(r"^backbone\.(bn1|layer\d+\.\d+\.(bn\d|downsample\.1))$")


def frozen_batchnorms(model: nn.Module, mode: str) -> list[nn.Module]:
    """BatchNorm2d layers that ``mode`` freezes: ``frozen`` all of the trunk's, ``partial`` all but the
    first, as in TSN/TSM's partial BN. BatchNorms inside temporal modules (TAdaConv's zero-initialised
    temporal branch, a plug-in's) are never frozen: they start untrained, and frozen at their
    initialisation (zero, for TAda's) they would switch their module off for good."""
    bns = [m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and _TRUNK_BN.match(n)]
    return {"train": [], "frozen": bns, "partial": bns[1:]}[mode]


def param_groups(model: Recognizer, o: OptimConfig) -> list[dict[str, Any]]:
    """SGD groups, as the TSM/TIN code's get_optim_policies: fc weight (lr x fc_lr_mult_weight, decay), fc
    bias (x fc_lr_mult_bias, no decay), other weights (decay), other conv/linear biases (x bias_lr_mult,
    no decay: TIN's OffsetNet/WeightNet, TAda's routing), the rest, i.e. BN (no decay)."""
    fc = {id(model.fc.weight): "fc_weight", id(model.fc.bias): "fc_bias"}
    biases = {id(m.bias) for m in model.modules()
              if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.bias is not None}
    groups: dict[str, list[Tensor]] = {"fc_weight": [], "fc_bias": [], "weight": [], "bias": [], "no_decay": []}
    for p in model.parameters():
        if p.requires_grad:
            kind = "weight" if p.dim() > 1 else "bias" if id(p) in biases else "no_decay"
            groups[fc.get(id(p), kind)].append(p)
    spec = {"fc_weight": (o.fc_lr_mult_weight, o.weight_decay), "fc_bias": (o.fc_lr_mult_bias, 0.0),
            "weight": (1.0, o.weight_decay), "bias": (o.bias_lr_mult, 0.0), "no_decay": (1.0, 0.0)}
    return [{"params": ps, "lr": o.lr * spec[k][0], "weight_decay": spec[k][1], "name": k}
            for k, ps in groups.items() if ps]


def build_optimizer(model: Recognizer, o: OptimConfig) -> torch.optim.SGD:
    """SGD with momentum over :func:`param_groups` (call after freezing BN: frozen parameters are left out)."""
    return torch.optim.SGD(param_groups(model, o), lr=o.lr, momentum=o.momentum)


def build_scheduler(optimizer: torch.optim.Optimizer, iters_per_epoch: int,
                    o: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule :func:`lr_factor` (stepped after every optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, iters_per_epoch, o))
