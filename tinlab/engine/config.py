"""Run configs: one YAML file validated into typed dataclasses (the single source of every default).

A config has four sections; every key is optional and unknown keys are errors::

    model: {name: tin, backbone: resnet50, width_mult: 1.0, small_stem: false, dropout: null,
            pretrained: null, options: {groups: 2}}          # options: temporal-op options
    data:  {dataset: something-v1, root: data/something-v1, num_segments: 8, input_size: 224,
            batch_size: 8, num_workers: 4, test_clips: 1, test_crops: 1, preset: {frame_dir: ""}}
    optim: {recipe: paper, lr: null, epochs: null, ...}      # null = the recipe's value
    run:   {seed: 0, out: null, device: auto, amp: true, channels_last: true, threads: 0}

Recipes: ``paper`` = the TIN paper (SGD 0.9, lr 0.005
/10 at epochs 10 and 20, 25 epochs, wd 5e-4, dropout 0.5, frozen BN); ``official`` = the TIN code
(lr 0.02 cosine, 1 warm-up epoch, 40 epochs, dropout 0.8, grad clip 20, partial BN, fc lr x5/x10, the
biases of TIN's nets x2).
:func:`load_config` fills every ``null`` from the recipe, so a loaded config is complete and its hash
says exactly what ran.

Example:
    >>> cfg = load_config(None, ["model.name=tsn", "optim.recipe=official", "optim.epochs=2"])
    >>> cfg.optim.schedule, cfg.optim.epochs, cfg.model.dropout
    ('cosine', 2, 0.8)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.presets import DATASET_PRESETS
from ..errors import ConfigError
from ..models.archs import ARCHS
from ..registry import PLUGIN_HINT, get_module, list_models
from ..utils.io import parse_yaml, read_yaml

BN_MODES = ("train", "frozen", "partial")  # partial: every BN frozen but the first (TSN's partial BN)
SCHEDULES = ("step", "cosine")
DEVICES = ("auto", "cpu", "cuda")
TEST_CROPS = (1, 3, 5, 10)
MIN_INPUT_SIZE = 16  # smaller crops leave a ResNet's last stage with less than one pixel of real input

__all__ = ["BN_MODES", "Config", "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RECIPES", "RunConfig",
           "base_for_frames", "config_from_dict", "config_hash", "config_to_dict", "dump_config", "load_config",
           "merge_nested"]


@dataclass
class ModelConfig:
    name: str = "tin"
    backbone: str = "resnet50"
    width_mult: float = 1.0
    small_stem: bool = False
    dropout: float | None = None  # None: the recipe's
    pretrained: str | None = None  # local torchvision checkpoint for the trunk
    options: dict[str, Any] = field(default_factory=dict)  # temporal-op options, e.g. {groups: 4}


@dataclass
class DataConfig:
    dataset: str = "synthetic-motion"  # a preset name (tinlab.data.DATASET_PRESETS)
    root: str = "data/synthetic-motion"  # relative to the working directory
    num_segments: int = 8
    input_size: int = 224
    scale_size: int | None = None
    batch_size: int = 8  # global: split across processes under torchrun
    num_workers: int = 0
    test_clips: int = 1  # views used by `evaluate` (validation during training uses one)
    test_crops: int = 1
    check_files: bool = True  # training: check that every listed frame is a readable file before epoch 0
    preset: dict[str, Any] = field(default_factory=dict)  # preset field overrides, e.g. {num_classes: 10}


@dataclass
class OptimConfig:
    recipe: str = "paper"
    lr: float | None = None
    epochs: int | None = None
    schedule: str | None = None  # "step" or "cosine"
    milestones: list[int] | None = None  # step schedule: lr x lr_gamma at each
    lr_gamma: float | None = None
    warmup_epochs: float | None = None  # linear warm-up from 0, per iteration
    momentum: float | None = None
    weight_decay: float | None = None
    clip_grad: float | None = None  # max global grad norm; 0 = no clipping
    bn: str | None = None  # "train", "frozen" or "partial"
    fc_lr_mult_weight: float | None = None
    fc_lr_mult_bias: float | None = None
    bias_lr_mult: float | None = None  # conv/linear biases other than the fc's (TIN's nets, TAda's routing)


@dataclass
class RunConfig:
    seed: int = 0
    out: str | None = None  # run directory; `train --out` wins; default runs/<config file stem>
    device: str = "auto"
    amp: bool = True  # CUDA only; ignored on CPU
    channels_last: bool = True  # CUDA only
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only=True)
    validate_every: int = 1  # epochs between validations (best metric, TensorBoard top-1)
    # Intra-op CPU threads (torch.set_num_threads) of training and evaluation; 0 = torch's default (one per
    # core). Part of the config because the thread count changes the float summation order, and so the
    # trajectory: the same config file trains bit-identically only with the same count (the workflow sets
    # it from resources.train_threads).
    threads: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Recipe values: what a null optim field (and model.dropout) becomes.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(lr=0.005, epochs=25, schedule="step", milestones=[10, 20], lr_gamma=0.1, warmup_epochs=0.0,
                  momentum=0.9, weight_decay=5e-4, clip_grad=0.0, bn="frozen", fc_lr_mult_weight=1.0,
                  fc_lr_mult_bias=1.0, bias_lr_mult=1.0, dropout=0.5),
    # The TIN code's get_optim_policies: fc weight x5, fc bias x10, other conv/linear biases
    # ("normal_bias": TIN's OffsetNet/WeightNet) x2 without decay, BN without decay.
    "official": dict(lr=0.02, epochs=40, schedule="cosine", milestones=[], lr_gamma=0.1, warmup_epochs=1.0,
                     momentum=0.9, weight_decay=5e-4, clip_grad=20.0, bn="partial", fc_lr_mult_weight=5.0,
                     fc_lr_mult_bias=10.0, bias_lr_mult=2.0, dropout=0.8),
}


# YAML 1.1 (PyYAML) reads a float without a dot, such as 1e-2 or 5E3, as a string: where a number is
# expected, that string means the number.
_EXPONENT_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _check_type(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` as type ``tp`` (int -> float allowed, "1e-2" -> 0.01, bool never passes as a number)."""
    if tp is float and isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        value = float(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], key, where)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }
    if tp in ok:
        if not ok[tp]:
            raise ConfigError(f"{where}: key '{key}' must be {tp.__name__}, got {value!r} "
                              f"({type(value).__name__})")
        return float(value) if tp is float else value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: key '{key}' must be a list, got {value!r}")
        return [_check_type(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config type {tp}")  # a schema bug, not a user error


def _build(cls: type, data: Any, prefix: str, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix or 'the file'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key '{dotted}' (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        dotted = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, dotted, where)
        else:
            kwargs[name] = _check_type(value, tp, dotted, where)
    return cls(**kwargs)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """``a.b=value`` into the nested dict; the value is parsed as YAML (``2``, ``0.1``, ``[5, 8]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.sub=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}  # unknown sections are reported by validation, with the dotted key
        node = node[part]
    value = parse_yaml(text, f"override {item!r}") if text.strip() else ""
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads "1e30" (no dot) as a string; here it means the number
    node[parts[-1]] = value


def _check_options(cfg: Config, where: str) -> None:
    """``model.options`` against the model's own options: known names, and the type of their default."""
    defaults = get_module(cfg.model.name).defaults
    for key, value in cfg.model.options.items():
        dotted = f"model.options.{key}"
        if key not in defaults:
            raise ConfigError(f"{where}: unknown key '{dotted}' for model {cfg.model.name!r} "
                              f"(its options: {', '.join(sorted(defaults)) or 'none'})")
        tp = type(defaults[key])
        if defaults[key] is None:  # no type to hold it to
            continue
        if tp is float and isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = cfg.model.options[key] = float(value)
        if tp is float and not isinstance(value, bool) and isinstance(value, int):
            value = cfg.model.options[key] = float(value)
        if tp is tuple and isinstance(value, list):  # YAML has lists, not tuples
            value = cfg.model.options[key] = tuple(value)
        if type(value) is not tp:
            raise ConfigError(f"{where}: key '{dotted}' must be {tp.__name__} like its default "
                              f"{defaults[key]!r}, got {value!r} ({type(value).__name__})")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: key '{dotted}' = {value!r} is not valid; expected a finite number")


def _semantic_checks(cfg: Config, where: str) -> None:
    def bad(key: str, value: Any, allowed: Any) -> ConfigError:
        return ConfigError(f"{where}: key '{key}' = {value!r} is not valid; expected {allowed}")

    choices = {"model.name": (cfg.model.name, list_models()), "model.backbone": (cfg.model.backbone, sorted(ARCHS)),
               "data.dataset": (cfg.data.dataset, sorted(DATASET_PRESETS)), "optim.bn": (cfg.optim.bn, list(BN_MODES)),
               "optim.schedule": (cfg.optim.schedule, list(SCHEDULES)), "run.device": (cfg.run.device, list(DEVICES)),
               "data.test_crops": (cfg.data.test_crops, list(TEST_CROPS))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise bad(key, value, f"one of {allowed}" + (f" ({PLUGIN_HINT})" if key == "model.name" else ""))
    o, d = cfg.optim, cfg.data
    # key -> (value, lowest, highest, lowest allowed, highest allowed); every bound is also a finite check
    ranges = {
        "optim.epochs": (o.epochs, 1, 100000, True, True), "optim.lr": (o.lr, 0, math.inf, False, False), "optim.momentum": (o.momentum, 0, 1, True, False),
        "optim.weight_decay": (o.weight_decay, 0, math.inf, True, False),
        "optim.lr_gamma": (o.lr_gamma, 0, 1, False, True), "optim.warmup_epochs": (o.warmup_epochs, 0, o.epochs, True, True),
        "optim.clip_grad": (o.clip_grad, 0, math.inf, True, False),
        "optim.fc_lr_mult_weight": (o.fc_lr_mult_weight, 0, math.inf, True, False),
        "optim.fc_lr_mult_bias": (o.fc_lr_mult_bias, 0, math.inf, True, False),
        "optim.bias_lr_mult": (o.bias_lr_mult, 0, math.inf, True, False),
        "model.dropout": (cfg.model.dropout, 0, 1, True, False), "model.width_mult": (cfg.model.width_mult, 0, 64, False, True),
        "data.num_segments": (d.num_segments, 1, 1024, True, True),
        "data.input_size": (d.input_size, MIN_INPUT_SIZE, 4096, True, True),
        "data.scale_size": (d.scale_size if d.scale_size is not None else d.input_size, d.input_size, 8192, True, True),
        "data.batch_size": (d.batch_size, 1, math.inf, True, False), "data.num_workers": (d.num_workers, 0, 1024, True, True),
        "data.test_clips": (d.test_clips, 1, 1024, True, True),
        "run.seed": (cfg.run.seed, 0, 2**63 - 1, True, True), "run.validate_every": (cfg.run.validate_every, 1, math.inf, True, False),
        "run.threads": (cfg.run.threads, 0, 4096, True, True),
    }
    for key, (value, lo, hi, lo_ok, hi_ok) in ranges.items():
        ok = math.isfinite(value) and (lo <= value if lo_ok else lo < value) and (value <= hi if hi_ok else value < hi)
        if not ok:
            interval = f"{'[' if lo_ok else '('}{lo}, {hi}{']' if hi_ok else ')'}".replace("inf", "∞")
            raise bad(key, value, f"a finite number in {interval}")
    if any(m < 1 for m in o.milestones) or o.milestones != sorted(set(o.milestones)):
        raise bad("optim.milestones", o.milestones, "increasing epochs >= 1")
    _check_options(cfg, where)


def config_from_dict(raw: dict[str, Any], where: str = "<config>") -> Config:
    """Validate a nested dict (as read from YAML) and fill recipe values; errors name ``where`` and the key."""
    cfg = _build(Config, raw, "", where)
    recipe = RECIPES.get(cfg.optim.recipe)
    if recipe is None:
        raise ConfigError(f"{where}: key 'optim.recipe' = {cfg.optim.recipe!r} is not valid; "
                          f"expected one of {sorted(RECIPES)}")
    for f in dataclasses.fields(OptimConfig):
        if getattr(cfg.optim, f.name) is None:
            setattr(cfg.optim, f.name, recipe[f.name])
    if cfg.model.dropout is None:
        cfg.model.dropout = recipe["dropout"]
    _semantic_checks(cfg, where)
    return cfg


def merge_nested(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: mappings merge key by key, any other value (``None`` included) replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_nested(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def base_for_frames(base: dict[str, Any], by_frames: dict[Any, Any] | None, frames: int,
                    where: str = "base_by_frames") -> dict[str, Any]:
    """The run config of a ``frames``-frame job: ``base`` with ``by_frames[frames]`` merged over it.

        >>> base_for_frames({"optim": {"epochs": 20, "lr": 0.02}}, {16: {"optim": {"epochs": 30}}}, 16)
        {'optim': {'epochs': 30, 'lr': 0.02}}
    """
    table: dict[int, Any] = {}
    for key, value in (by_frames or {}).items():
        text = str(key).strip()
        if isinstance(key, bool) or not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{where}: key {key!r} is not a number of frames")
        if int(text) in table:  # e.g. 16 from a YAML file and "16" from a JSON one
            raise ConfigError(f"{where}: {int(text)} frames appear twice (keys {key!r} and another)")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.{key}: expected a mapping of run-config sections, got {value!r}")
        table[int(text)] = value
    return merge_nested(base, table.get(int(frames), {}))


def load_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read ``path`` (None: all defaults), apply ``key.sub=value`` overrides, validate, fill the recipe.

    Example (reads a file)::

        cfg = load_config("configs/tin.yaml", ["optim.lr=0.01", "data.batch_size=16"])
    """
    where = str(path) if path is not None else "<defaults>"
    raw: Any = {}
    if path is not None:
        path = Path(path)
        raw = read_yaml(path) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {raw!r}")
    if overrides:
        where += " (with --set " + " ".join(overrides) + ")"
        for item in overrides:
            _apply_override(raw, item)
    return config_from_dict(raw, where)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_hash(cfg: Config) -> str:
    """12 hex digits of SHA-256 over the complete config, ``run.out`` excluded (where a run is written
    does not change what it computes).

    Example:
        >>> config_hash(load_config(None)) == config_hash(load_config(None, ["run.out=elsewhere"]))
        True
    """
    d = config_to_dict(cfg)
    d["run"].pop("out", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def dump_config(cfg: Config) -> str:
    """The complete config as YAML (what ``train`` writes to ``<run>/config.yaml``)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
