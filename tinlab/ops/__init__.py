"""Temporal operators on (N*T, C, H, W) features, built by name with :func:`create_temporal_op`.

>>> from tinlab.ops import create_temporal_op, list_temporal_ops
>>> list_temporal_ops()
['rtcn', 'tada', 'tcn', 'tin', 'tsm']
>>> op = create_temporal_op("tin", channels=64, num_segments=8, groups=2, reverse=True)
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .interlace import BOUNDARIES, interlace, interlace_coefficients, interlace_reference
from .rtcn import RegularizedTCN, rtcn, rtcn_kernel
from .tada import RouteFunc, TAdaConv2d
from .tcn import TemporalConv
from .tin import OffsetNet, TemporalInterlace, WeightNet
from .tsm import TemporalShift

_TEMPORAL_OPS: dict[str, Callable[..., nn.Module]] = {
    "tsm": TemporalShift,
    "tin": TemporalInterlace,
    "rtcn": RegularizedTCN,
    "tcn": TemporalConv,
    "tada": lambda channels, num_segments, **options: TAdaConv2d(channels, channels, num_segments,
                                                                 **options),
}


def list_temporal_ops() -> list[str]:
    """Names accepted by :func:`create_temporal_op`."""
    return sorted(_TEMPORAL_OPS)


def create_temporal_op(name: str, channels: int, num_segments: int, **options: Any) -> nn.Module:
    """Build the temporal op ``name`` for ``channels`` channels and clips of ``num_segments`` frames.

    Options are the keyword arguments of the op's class (e.g. ``shift_div``, ``groups``, ``reverse``,
    ``boundary``, ``offset_range``, ``attention`` for ``tin`` and ``rtcn``). Unknown names or options
    raise with the list of what is accepted.
    """
    if name not in _TEMPORAL_OPS:
        raise ValueError(f"unknown temporal op {name!r}; available: {list_temporal_ops()}")
    try:
        return _TEMPORAL_OPS[name](channels, num_segments, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise TypeError(f"temporal op {name!r} does not take option(s) {sorted(options)}: {e}") from e
        raise


__all__ = ["BOUNDARIES", "OffsetNet", "RegularizedTCN", "RouteFunc", "TAdaConv2d", "TemporalConv",
           "TemporalInterlace", "TemporalShift", "WeightNet", "create_temporal_op", "interlace",
           "interlace_coefficients", "interlace_reference", "list_temporal_ops", "rtcn", "rtcn_kernel"]
