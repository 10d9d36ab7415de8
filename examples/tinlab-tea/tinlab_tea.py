"""TEA's motion excitation as a tinlab temporal module: the whole plug-in is this file and one decorator.

Motion excitation (Li et al., "TEA: Temporal Excitation and Aggregation for Action Recognition",
CVPR 2020, Sec. 3.2): channel attention computed from the difference between the features of adjacent
frames. Squeeze the channels (1x1 conv, BN), transform the next frame's features with a depthwise 3x3
conv, subtract the current frame's, pool over space, expand back (1x1 conv, BN) and excite:
``y = x + x * (sigmoid(a) - 0.5)``. The last frame has no successor: its difference is zero. The
expanding BN starts at zero, so the module starts as the identity (the network as TSN), like tinlab's
TCN and TAdaConv.

Registered under the name ``tea`` (the entry point in pyproject.toml makes tinlab find it once this
package is installed), it is a model in every table: ``models: [tsn, tsm, tin, tea]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tinlab


@tinlab.register_temporal_op("tea", defaults={"reduction": 16},
                             flop_handles={"aten::constant_pad_nd": lambda inputs, outputs: 0})
class MotionExcitation(nn.Module):
    """TEA's motion excitation on (N*T, C, H, W) features (Li et al. 2020)."""

    def __init__(self, channels: int, num_segments: int, *, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.num_segments = num_segments
        self.squeeze = nn.Conv2d(channels, hidden, 1, bias=False)
        self.squeeze_bn = nn.BatchNorm2d(hidden)
        self.transform = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.expand_bn.weight)  # attention 0 at start: the identity

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        f = self.squeeze_bn(self.squeeze(x))
        f5 = f.view(nt // self.num_segments, self.num_segments, *f.shape[1:])
        following = self.transform(f5[:, 1:].flatten(0, 1)).view_as(f5[:, 1:])
        diff = F.pad(following - f5[:, :-1], (0, 0, 0, 0, 0, 0, 0, 1))  # zero for the last frame
        a = self.expand_bn(self.expand(diff.flatten(0, 1).mean((2, 3), keepdim=True)))
        return x + x * (torch.sigmoid(a) - 0.5)
