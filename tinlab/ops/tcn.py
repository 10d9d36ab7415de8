"""TCN: a plain learnable depthwise temporal convolution, the unconstrained control for r-TCN."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class TemporalConv(nn.Module):
    """Depthwise Conv1d over time (zero padding) on the first ``channels // shift_div`` channels.

    Same channel budget as TIN (shift_div 4); the kernel is free where r-TCN's is a two-tap hat.
    Initialised to the identity (centre tap 1), so the network starts as TSN.

    Example:
        >>> op = TemporalConv(64, num_segments=8)
        >>> x = torch.randn(16, 64, 7, 7)
        >>> torch.equal(op(x), x)
        True
    """

    def __init__(self, channels: int, num_segments: int, *, shift_div: int = 4,
                 kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.fold = channels // shift_div
        if self.fold == 0:
            raise ValueError(f"channels // shift_div must be >= 1, got {channels} // {shift_div}")
        self.channels, self.num_segments = channels, num_segments
        self.conv = nn.Conv1d(self.fold, self.fold, kernel_size, padding=kernel_size // 2,
                              groups=self.fold, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, kernel_size // 2] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        if c != self.channels or nt % self.num_segments:
            raise ValueError(f"TemporalConv expects (N*T, {self.channels}, H, W) with T = "
                             f"{self.num_segments} dividing the first dimension, got {tuple(x.shape)}")
        n, t, f = nt // self.num_segments, self.num_segments, self.fold
        x5 = x.view(n, t, c, h, w)
        part = x5[:, :, :f].permute(0, 3, 4, 2, 1).reshape(n * h * w, f, t)
        y = self.conv(part).view(n, h, w, f, t).permute(0, 4, 3, 1, 2)
        return torch.cat([y, x5[:, :, f:]], 2).reshape(nt, c, h, w)
