"""Recognisers by name: :func:`create_model` and :func:`list_models` (timm-style registry).

>>> import tinlab
>>> tinlab.list_models()
['rtcn', 'tada', 'tcn', 'tin', 'tsm', 'tsn']
>>> model = tinlab.create_model("tin", backbone="resnet18", num_classes=10, num_segments=8,
...                             width_mult=0.25, small_stem=True, groups=2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ops import create_temporal_op
from .recognizer import Recognizer
from .resnet import ARCHS, ResNet, load_pretrained

# model name -> (temporal op name or None, default op options)
_MODELS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "tsn": (None, {}),
    "tsm": ("tsm", {"shift_div": 8}),
    "tin": ("tin", {"shift_div": 4, "groups": 2, "reverse": True, "boundary": "zero",
                    "offset_range": 2.0, "attention": True}),
    "rtcn": ("rtcn", {"shift_div": 4, "groups": 2, "reverse": True, "boundary": "zero",
                      "offset_range": 2.0, "attention": True}),
    "tcn": ("tcn", {"shift_div": 4, "kernel_size": 3}),
    "tada": ("tada", {}),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_MODELS)


def default_op_options(name: str) -> dict[str, Any]:
    """The temporal-op options a model gets when none are given (the official defaults)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return dict(_MODELS[name][1])


def create_model(name: str, *, backbone: str = "resnet50", num_classes: int = 174, num_segments: int = 8,
                 dropout: float = 0.5, width_mult: float = 1.0, small_stem: bool = False,
                 pretrained: str | Path | None = None, **op_options: Any) -> Recognizer:
    """Build a recogniser: ``tsn``, ``tsm``, ``tin``, ``rtcn``, ``tcn`` or ``tada`` on a ResNet.

    Args:
        name: the temporal module (see :func:`list_models`).
        backbone: ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``.
        num_classes, num_segments: classes and frames per clip T.
        dropout: before the fc (TSN head).
        width_mult, small_stem: CPU-sized variants of the backbone.
        pretrained: optional local torchvision-format ImageNet checkpoint for the trunk.
        **op_options: temporal-op options (e.g. ``groups``, ``reverse``, ``boundary`` for tin/rtcn).

    Placement follows the official code: the op sits in the residual branch before conv1 of every
    block (TSM: every other block when a stage has 23 or more blocks, i.e. ResNet-101); TAdaConv
    replaces the strided 3x3 conv of every block.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    op_name, defaults = _MODELS[name]
    if op_name is None and op_options:
        raise TypeError(f"model 'tsn' has no temporal op; unexpected option(s) {sorted(op_options)}")
    options = {**defaults, **op_options}
    temporal_op = tada_segments = None
    if op_name == "tada":
        if options:
            raise TypeError(f"model 'tada' takes no temporal-op options, got {sorted(options)}")
        tada_segments = num_segments
    elif op_name is not None:
        every_other = op_name == "tsm" and ARCHS.get(backbone, ("", (0, 0, 0, 0)))[1][2] >= 23

        def temporal_op(stage: int, block: int, channels: int):
            if every_other and block % 2:
                return None
            return create_temporal_op(op_name, channels, num_segments, **options)

    trunk = ResNet(backbone, width_mult=width_mult, small_stem=small_stem, temporal_op=temporal_op,
                   tada_segments=tada_segments)
    if pretrained:
        load_pretrained(trunk, pretrained)
    return Recognizer(trunk, num_classes, num_segments, dropout=dropout, name=name)


__all__ = ["ARCHS", "Recognizer", "ResNet", "create_model", "default_op_options", "list_models",
           "load_pretrained"]
