"""TIN: the Temporal Interlacing module (Shao et al., AAAI 2020), as the official code builds it.

Applied to the input of conv1 in the residual branch of every block (see ``tinlab.models``):

1. ``fold = C // shift_div`` leading channels are interlaced, the rest pass unchanged.
2. Descriptor: spatial mean of those channels, (N, fold, T) (paper Eq. 1).
3. OffsetNet (Eq. 2): Conv1d(fold -> 1, k=3) -> Linear(T, T) -> ReLU -> Linear(T, G) -> offsets
   ``o = 2 * offset_range * (sigmoid(z) - 0.5)`` in (-offset_range, offset_range); the last bias starts
   at ``logit(0.5 + 0.25 / offset_range)`` (0.5108 for the official range 2), i.e. offsets near +0.5.
4. WeightNet: Conv1d(fold -> G, k=3), ``w = 2 * sigmoid(.)`` in (0, 2); bias 0 so w starts at 1.
5. Reverse offsets (default): groups (o_1..o_G, -o_1..-o_G) over 2G equal channel groups of the fold;
   the reverse groups reuse the weights of their twins.
6. Fractional shift with linear interpolation and temporal attention: :func:`tinlab.ops.interlace`.

Unlike the official code, nothing is copied to the host in the forward pass (no debug buffers). To
read the offsets and weights, hook ``offset_net`` / ``weight_net`` (their outputs are the offsets
(N, G) and weights (N, T, G) before the reverse groups): :class:`tinlab.engine.callbacks.InterlaceProbe`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .interlacing import BOUNDARIES, interlace_rows


@torch.library.custom_op("tinlab::leading_row_mean", mutates_args=())
def leading_row_mean(x: Tensor, rows: int) -> Tensor:
    """x (N, T, R, Cg, H*W): spatial mean of every channel of the first ``rows`` rows -> (N, T, rows*Cg)."""
    return x[:, :, :rows].mean(-1).flatten(2)


@leading_row_mean.register_fake
def _leading_row_mean_fake(x, rows):
    return x.new_empty(x.shape[0], x.shape[1], rows * x.shape[3])


def _leading_row_mean_setup(ctx, inputs, output):
    ctx.shape, ctx.rows = inputs[0].shape, inputs[1]


def _leading_row_mean_backward(ctx, grad):
    # A zero-stride expansion of (N, T, R, Cg, 1), in the input's own shape: autograd adds it in place
    # into the interlace gradient of the same tensor, with no full-size zero tensor and no reshape copy.
    n, t, r, cg, hw = ctx.shape
    small = grad.new_zeros(n, t, r, cg, 1)
    small[:, :, :ctx.rows, :, 0] = grad.view(n, t, ctx.rows, cg) / hw
    return small.expand(n, t, r, cg, hw), None


leading_row_mean.register_autograd(_leading_row_mean_backward, setup_context=_leading_row_mean_setup)


def _shape(value) -> list[int]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


# fvcore handles for TIN's custom ops (tinlab.measure.flops; declared with the registration, also for
# r-TCN, which shares the descriptor): the descriptor is a mean, 1 per input element averaged; the
# interlacing is a0 * x0 + a1 * x1 per interlaced element, the frame weight folded into a0 / a1: 2.
FLOP_HANDLES = {
    "tinlab::leading_row_mean": lambda inputs, outputs: math.prod(_shape(outputs[0])) * _shape(inputs[0])[-1],
    "tinlab::interlace_frames": lambda inputs, outputs: 2 * math.prod(_shape(inputs[1])) * math.prod(
        _shape(inputs[0])[3:]),
}


class OffsetNet(nn.Module):
    """Per-video offsets (N, groups) from the (N, fold, T) descriptor."""

    def __init__(self, fold: int, num_segments: int, groups: int, offset_range: float = 2.0) -> None:
        super().__init__()
        self.offset_range = float(offset_range)
        self.conv = nn.Conv1d(fold, 1, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(num_segments, num_segments)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(num_segments, groups)
        # Official init: sigmoid(bias) = 0.625 gives offsets of +0.5 for the range (-2, 2).
        nn.init.constant_(self.fc2.bias, math.log((0.5 + 0.25 / self.offset_range)
                                                  / (0.5 - 0.25 / self.offset_range)))

    def forward(self, descriptor: Tensor) -> Tensor:
        z = self.fc2(self.relu(self.fc1(self.conv(descriptor).squeeze(1))))
        return 2 * self.offset_range * (torch.sigmoid(z) - 0.5)


class WeightNet(nn.Module):
    """Per-frame weights (N, T, groups) in (0, 2) from the (N, fold, T) descriptor."""

    def __init__(self, fold: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(fold, groups, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.bias)

    def forward(self, descriptor: Tensor) -> Tensor:
        return 2 * torch.sigmoid(self.conv(descriptor)).transpose(1, 2)


class TemporalInterlace(nn.Module):
    """TIN temporal op on (N*T, C, H, W) features.

    Args:
        channels: input channels C.
        num_segments: frames per clip T (fixed: OffsetNet holds a Linear(T, T)).
        shift_div: 1/shift_div of the channels are interlaced (official: 4).
        groups: learned offset groups G (paper Table 5: 1, 2, 4; official: 2).
        reverse: add G reverse groups with negated offsets (official: on).
        boundary: ``"zero"`` (official) or ``"clamp"`` (paper's temporal extension).
        offset_range: offsets lie in (-offset_range, offset_range) (official: 2).
        attention: multiply by WeightNet's per-frame weights (official: on).

    Example:
        >>> op = TemporalInterlace(64, num_segments=8)
        >>> op(torch.randn(2 * 8, 64, 7, 7)).shape
        torch.Size([16, 64, 7, 7])
    """

    def __init__(self, channels: int, num_segments: int, *, shift_div: int = 4, groups: int = 2,
                 reverse: bool = True, boundary: str = "zero", offset_range: float = 2.0,
                 attention: bool = True) -> None:
        super().__init__()
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if groups < 1 or shift_div < 1 or num_segments < 1:
            raise ValueError(f"groups, shift_div and num_segments must be >= 1, got "
                             f"groups={groups}, shift_div={shift_div}, num_segments={num_segments}")
        if not offset_range > 0:
            raise ValueError(f"offset_range must be > 0, got {offset_range}")
        self.fold = channels // shift_div
        self.num_channel_groups = groups * (2 if reverse else 1)
        if self.fold == 0 or self.fold % self.num_channel_groups:
            raise ValueError(
                f"TIN needs channels // shift_div = {channels} // {shift_div} = {self.fold} to be a "
                f"positive multiple of the {self.num_channel_groups} channel groups "
                f"(groups={groups}, reverse={reverse})")
        if channels % (self.fold // self.num_channel_groups):
            raise ValueError(f"TIN needs channels = {channels} to be a multiple of the channel-group size "
                             f"{self.fold // self.num_channel_groups} (fold {self.fold} / "
                             f"{self.num_channel_groups} groups)")
        self.channels, self.num_segments = channels, num_segments
        self.shift_div, self.groups, self.reverse = shift_div, groups, reverse
        self.boundary, self.offset_range, self.attention = boundary, float(offset_range), attention
        self.offset_net = OffsetNet(self.fold, num_segments, groups, offset_range)
        self.weight_net = WeightNet(self.fold, groups) if attention else None

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_segments={self.num_segments}, shift_div={self.shift_div}, "
                f"groups={self.groups}, reverse={self.reverse}, boundary={self.boundary!r}, "
                f"offset_range={self.offset_range}, attention={self.attention}")

    def offsets_and_weights(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Offsets (N, channel groups) and weights (N, T, channel groups) or None, reverse groups
        included, from the (N*T, C, H, W) input."""
        return self._offsets_and_weights(self._rows(x))

    def _rows(self, x: Tensor) -> Tensor:
        """x as (N, T, R, Cg, H*W): row g < 2G of a frame is channel group g of the fold (Cg channels)."""
        nt, c = x.shape[:2]
        if x.dim() != 4 or c != self.channels or nt % self.num_segments:
            raise ValueError(f"{type(self).__name__} expects (N*T, {self.channels}, H, W) with T = "
                             f"{self.num_segments} dividing the first dimension, got {tuple(x.shape)}")
        cg = self.fold // self.num_channel_groups
        return x.contiguous().view(nt // self.num_segments, self.num_segments, c // cg, cg, -1)

    def _offsets_and_weights(self, rows: Tensor) -> tuple[Tensor, Tensor | None]:
        # Per-channel spatial mean of the fold (the first num_channel_groups rows): (N, fold, T).
        descriptor = leading_row_mean(rows, self.num_channel_groups).transpose(1, 2).contiguous()
        offsets = self.offset_net(descriptor)
        weights = self.weight_net(descriptor) if self.weight_net is not None else None
        if self.reverse:
            offsets = torch.cat([offsets, -offsets], 1)
            if weights is not None:
                weights = torch.cat([weights, weights], 2)
        return offsets, weights

    def interlaced(self, rows: Tensor, offsets: Tensor, weights: Tensor | None) -> Tensor:
        """The whole output, shaped like ``rows`` (N, T, R, Cg, H*W): the fold interlaced, the rest copied."""
        return interlace_rows(rows, offsets, weights, self.boundary)

    def aggregate_fold(self, rows: Tensor, fn) -> Tensor:
        """Like :meth:`interlaced`, with the fold aggregated by ``fn`` on (N, T, fold, H*W, 1) instead of the
        fused op (r-TCN's convolution, the naive gather of the benchmarks); the other channels copied."""
        n, t = rows.shape[:2]
        x5 = rows.reshape(n, t, self.channels, -1)
        y = fn(x5[:, :, :self.fold].unsqueeze(-1)).squeeze(-1)
        return torch.cat([y, x5[:, :, self.fold:]], 2).view_as(rows)

    def forward(self, x: Tensor) -> Tensor:
        rows = self._rows(x)  # ONE tensor feeds both consumers: their gradients meet before any reshape
        offsets, weights = self._offsets_and_weights(rows)
        return self.interlaced(rows, offsets, weights).view_as(x)
