"""r-TCN: TIN's interlacing realised as a regularized depthwise temporal convolution (paper Sec. 4).

For a group with offset O, ``x[t - O]`` with linear interpolation is a temporal convolution whose
kernel over the shift s is the hat function ``k(s) = max(0, 1 - |s - O|)``: non-zero only at the two
taps s = floor(O) and floor(O) + 1, with values 1 - lam and lam (the paper's "constrained kernel of
size 2", Eq. 11). The kernel depends on the video, so it is applied as ONE grouped convolution with
the batch folded into the groups (groups = N * C), as TAdaConv does. The frame weights multiply the
output, outside the stationary kernel. ``boundary="clamp"`` uses replicate padding.

This formulation shares no code with :mod:`tinlab.ops.interlacing` (no floor, no gather), which is what
makes the equivalence check between them worth something.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .interlacing import _check
from .tin import TemporalInterlace

__all__ = ["rtcn", "rtcn_kernel", "RegularizedTCN"]


def rtcn_kernel(offsets: Tensor, radius: int) -> Tensor:
    """Hat kernels (N, G, 2 * radius + 1); tap j multiplies ``x[t - (radius - j)]``."""
    shifts = torch.arange(radius, -radius - 1, -1, device=offsets.device, dtype=offsets.dtype)
    o = offsets.clamp(-radius, radius).unsqueeze(-1)
    return torch.relu(1 - (shifts - o).abs())


def rtcn(x: Tensor, offsets: Tensor, weights: Tensor | None = None, boundary: str = "zero",
         radius: int | None = None) -> Tensor:
    """:func:`tinlab.ops.interlace` computed as an explicit depthwise temporal convolution.

    Args:
        x, offsets, weights, boundary: as for :func:`tinlab.ops.interlace`.
        radius: kernel radius R (2R + 1 taps). Exact whenever |offsets| <= R; the default R = T
            covers every offset (a shift by T or more reads only padding). Offsets beyond R are
            clamped to R, which changes nothing for them.

    Example:
        >>> x = torch.randn(2, 8, 16, 7, 7, dtype=torch.float64)
        >>> o = torch.rand(2, 4, dtype=torch.float64) * 4 - 2
        >>> from tinlab.ops import interlace
        >>> torch.allclose(rtcn(x, o), interlace(x, o))
        True
    """
    g = _check(x, offsets, weights, boundary)
    n, t, c, h, w = x.shape
    r = t if radius is None else int(radius)
    kernel = rtcn_kernel(offsets.to(x.dtype), r)  # (N, G, K)
    kernel = kernel.repeat_interleave(c // g, dim=1).reshape(n * c, 1, 2 * r + 1, 1)
    # (N, T, C, H, W) -> (1, N*C, T, H*W): one conv2d with a (K, 1) kernel per (video, channel).
    xt = x.permute(0, 2, 1, 3, 4).reshape(1, n * c, t, h * w)
    if boundary == "clamp":
        y = F.conv2d(F.pad(xt, (0, 0, r, r), mode="replicate"), kernel, groups=n * c)
    else:
        y = F.conv2d(xt, kernel, padding=(r, 0), groups=n * c)
    y = y.view(n, c, t, h, w).permute(0, 2, 1, 3, 4)
    if weights is not None:
        y = y * weights.to(x.dtype).repeat_interleave(c // g, dim=2).view(n, t, c, 1, 1)
    return y.contiguous()


class RegularizedTCN(TemporalInterlace):
    """TIN with its aggregation done by :func:`rtcn`: same OffsetNet/WeightNet, same parameter names
    (a ``tin`` state_dict loads into it), kernel radius ``ceil(offset_range)``."""

    def aggregate(self, rows: Tensor, z: Tensor, v: Tensor | None) -> Tensor:
        offsets, weights = self._offsets_and_weights(z, v)
        radius = math.ceil(self.offset_range)
        return self.aggregate_fold(rows, lambda fold: rtcn(fold, offsets, weights, self.boundary, radius=radius))
