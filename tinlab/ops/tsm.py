"""TSM: the temporal shift of Lin et al. (ICCV 2019), zero fill, no parameters."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class TemporalShift(nn.Module):
    """Shift 1/shift_div of the channels one frame back and another 1/shift_div one frame forward.

    Channels [0, fold): ``y[t] = x[t + 1]`` (zero at t = T - 1); channels [fold, 2 fold):
    ``y[t] = x[t - 1]`` (zero at t = 0); the rest unchanged; ``fold = C // shift_div``.

    Example:
        >>> op = TemporalShift(64, num_segments=8)
        >>> op(torch.randn(16, 64, 7, 7)).shape
        torch.Size([16, 64, 7, 7])
    """

    def __init__(self, channels: int, num_segments: int, *, shift_div: int = 8) -> None:
        super().__init__()
        if shift_div < 2 or channels // shift_div == 0:
            raise ValueError(f"TSM needs shift_div >= 2 and channels // shift_div >= 1, "
                             f"got channels={channels}, shift_div={shift_div}")
        self.channels, self.num_segments, self.shift_div = channels, num_segments, shift_div
        self.fold = channels // shift_div

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_segments={self.num_segments}, shift_div={self.shift_div}"

    def forward(self, x: Tensor) -> Tensor:
        nt, c = x.shape[:2]
        if x.dim() != 4 or c != self.channels or nt % self.num_segments:
            raise ValueError(f"TemporalShift expects (N*T, {self.channels}, H, W) with T = "
                             f"{self.num_segments} dividing the first dimension, got {tuple(x.shape)}")
        x5 = x.view(nt // self.num_segments, self.num_segments, c, *x.shape[2:])
        f = self.fold
        out = torch.empty_like(x5)
        out[:, :-1, :f] = x5[:, 1:, :f]
        out[:, -1:, :f] = 0
        out[:, 1:, f:2 * f] = x5[:, :-1, f:2 * f]
        out[:, :1, f:2 * f] = 0
        out[:, :, 2 * f:] = x5[:, :, 2 * f:]
        return out.view_as(x)
