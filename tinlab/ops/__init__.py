"""Temporal operators on (N*T, C, H, W) features, built by name with :func:`create_temporal_op`.

Names, defaults and classes come from :mod:`tinlab.registry` (plug-ins included).

>>> from tinlab.ops import create_temporal_op, list_temporal_ops
>>> list_temporal_ops()
['tsm', 'tin', 'rtcn', 'tcn', 'tada', 'tadav2']
>>> op = create_temporal_op("tin", channels=64, num_segments=8, groups=2, reverse=True)
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import get_module, list_temporal_ops
from .interlacing import BOUNDARIES, interlace, interlace_coefficients, interlace_reference
from .rtcn import RegularizedTCN, rtcn, rtcn_kernel
from .tada import RouteFunc, TAdaConv2d, TAdaNorm
from .tadav2 import RouteFuncV2, TAdaConv2dV2
from .tcn import TemporalConv
from .tin import OffsetNet, TemporalInterlace, WeightNet
from .tsm import TemporalShift


def create_temporal_op(name: str, channels: int, num_segments: int, **options: Any) -> nn.Module:
    """Build the registered temporal module ``name`` for ``channels`` channels and clips of
    ``num_segments`` frames; options default to its registered defaults. A block module (TAdaConv)
    gives its convolution (``channels`` in and out, stride 1). Unknown names or options raise with the
    list of what is accepted.
    """
    spec = get_module(name)
    if spec.kind == "none":
        raise ValueError(f"{name!r} has no temporal module; modules: {list_temporal_ops()}")
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        raise TypeError(f"temporal op {name!r} does not take option(s) {unknown}; its options: "
                        f"{sorted(spec.defaults) or 'none'}")
    options = {**spec.defaults, **options}
    if spec.kind == "block":
        conv, _ = spec.build()(channels, channels, num_segments, stride=1, **options)
        return conv
    return spec.build()(channels, num_segments, **options)


__all__ = ["BOUNDARIES", "OffsetNet", "RegularizedTCN", "RouteFunc", "RouteFuncV2", "TAdaConv2d", "TAdaConv2dV2",
           "TAdaNorm", "TemporalConv",
           "TemporalInterlace", "TemporalShift", "WeightNet", "create_temporal_op", "interlace",
           "interlace_coefficients", "interlace_reference", "list_temporal_ops", "rtcn", "rtcn_kernel"]
