"""Recognisers by name: :func:`create_model`, with names and defaults from :mod:`tinlab.registry`.

>>> import tinlab
>>> tinlab.list_models()
['tsn', 'tsm', 'tin', 'rtcn', 'tcn', 'tada', 'tadav2']
>>> model = tinlab.create_model("tin", backbone="resnet18", num_classes=10, num_segments=8,
...                             width_mult=0.25, small_stem=True, groups=2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .._lazy import lazy
from ..registry import TemporalModule, get_module, list_models
from .archs import ARCHS

__getattr__ = lazy(__name__, {"Recognizer": ".recognizer", "ResNet": ".resnet", "load_pretrained": ".resnet",
                              "load_checkpoint": ".checkpoints", "detect_format": ".checkpoints"})


def default_op_options(name: str) -> dict[str, Any]:
    """The temporal-module options a model gets when none are given (the official defaults)."""
    return dict(get_module(name).defaults)


def options_key(name: str, options: dict[str, Any] | None) -> str:
    """The options of model ``name`` that differ from its defaults, as sorted JSON (tuples as lists):
    the one spelling under which a table row, a latency row and a run name identify a configured model."""
    import json

    defaults = get_module(name).defaults
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in (options or {}).items()}
    return json.dumps({k: v for k, v in plain.items()
                       if k not in defaults or (list(defaults[k]) if isinstance(defaults[k], tuple) else defaults[k]) != v},
                      sort_keys=True)


def check_buildable(name: str, *, backbone: str = "resnet50", num_segments: int = 8, width_mult: float = 1.0,
                    small_stem: bool = False, **op_options: Any) -> None:
    """Build model ``name`` with these options on the meta device (no memory, no arithmetic), so that
    each module's own rules (TIN's ``offset_range > 0.5``, channels divisible into its groups, a plug-in's
    asserts) refuse a configuration before any data is generated or any run starts. A rule's
    ValueError/TypeError/AssertionError becomes a ConfigError naming the model and its options; a
    constructor the meta device cannot run is built on the CPU instead."""
    import torch

    from ..errors import ConfigError

    def build() -> None:
        create_model(name, backbone=backbone, num_classes=2, num_segments=num_segments, width_mult=width_mult,
                     small_stem=small_stem, **op_options)

    try:
        try:
            with torch.device("meta"):
                build()
        except (ValueError, TypeError, AssertionError):
            raise
        except Exception:  # e.g. an op the meta device lacks, in a plug-in's constructor
            build()
    except (ValueError, TypeError, AssertionError) as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in op_options.items()) or "its defaults"
        raise ConfigError(f"model {name!r} with {shown} ({backbone}, width_mult {width_mult}, {num_segments} "
                          f"frames) cannot be built: {e}") from None


def _hooks(spec: TemporalModule, backbone: str, num_segments: int, options: dict[str, Any]) -> dict[str, Any]:
    """The ResNet injection hook of a registered module, with its options bound."""
    if spec.kind == "none":
        return {}
    factory, layers = spec.build(), ARCHS.get(backbone, ("", (0, 0, 0, 0)))[1]
    if spec.kind == "op":
        return {"temporal_op": lambda stage, block, channels: factory(channels, num_segments, **options)
                if spec.places(layers, stage, block) else None}
    return {"spatial_conv": lambda stage, block, cin, cout, stride: factory(cin, cout, num_segments, stride=stride,
                                                                            **options)}


def create_model(name: str, *, backbone: str = "resnet50", num_classes: int = 174, num_segments: int = 8,
                 dropout: float = 0.5, width_mult: float = 1.0, small_stem: bool = False,
                 pretrained: str | Path | None = None, checkpoint: str | Path | None = None,
                 **op_options: Any) -> "Recognizer":  # noqa: F821
    """Build a registered model (:func:`tinlab.list_models`) on a ResNet.

    Args:
        name: the temporal module (``tsn`` for none).
        backbone: ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``.
        num_classes, num_segments: classes and frames per clip T.
        dropout: before the fc.
        width_mult, small_stem: CPU-sized variants of the backbone.
        pretrained: optional local torchvision-format ImageNet checkpoint for the trunk.
        checkpoint: a whole recogniser's checkpoint in any supported format (official TSM, TIN,
            TAdaConv, MMAction2, tinlab; :func:`tinlab.load_checkpoint`), loaded strictly.
        **op_options: the module's options (e.g. ``groups``, ``reverse``, ``boundary`` for tin/rtcn).

    Placement follows the official code: an op sits in the residual branch before conv1 of every
    block (TSM: every other block when a stage has 23 or more blocks, i.e. ResNet-101); a block module
    (TAdaConv) replaces the spatial conv of every block, on the network its registration describes.
    """
    from .recognizer import Recognizer
    from .resnet import ResNet, load_pretrained

    spec = get_module(name)
    unknown = sorted(set(op_options) - set(spec.defaults))
    if unknown:
        raise TypeError(f"model {name!r} does not take option(s) {unknown}; its options: "
                        f"{sorted(spec.defaults) or 'none'}")
    options = {**spec.defaults, **op_options}
    net = spec.network
    trunk = ResNet(backbone, width_mult=width_mult, small_stem=small_stem, stem=net.get("stem", "torchvision"),
                   stage1_stride=net.get("stage1_stride", 1), **_hooks(spec, backbone, num_segments, options))
    if pretrained:
        load_pretrained(trunk, pretrained)
    model = Recognizer(trunk, num_classes, num_segments, dropout=dropout, name=name, head=net.get("head", "frames"))
    model.options = dict(op_options)  # what was asked beyond the defaults (tinlab checkpoints record it)
    if checkpoint:
        from .checkpoints import load_checkpoint

        load_checkpoint(model, checkpoint)
    return model


__all__ = ["ARCHS", "Recognizer", "ResNet", "create_model", "default_op_options", "list_models",
           "load_checkpoint", "load_pretrained"]
