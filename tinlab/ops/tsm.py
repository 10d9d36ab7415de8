"""TSM: the temporal shift of Lin et al. (ICCV 2019), zero fill, no parameters."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _shift(out: Tensor, x: Tensor, lo: int, hi: int, step: int) -> None:
    """out[:, t, lo:hi] = x[:, t + step, lo:hi] (step = +1 or -1), zero where t + step is outside."""
    if step > 0:
        out[:, :-1, lo:hi] = x[:, 1:, lo:hi]
        out[:, -1, lo:hi] = 0
    else:
        out[:, 1:, lo:hi] = x[:, :-1, lo:hi]
        out[:, 0, lo:hi] = 0


@torch.library.custom_op("tinlab::temporal_shift", mutates_args=())
def temporal_shift(x: Tensor, fold: int, direction: int) -> Tensor:
    """TSM on a clip (N, T, C, ...): channels [0, fold) read frame t + direction, [fold, 2 fold) read
    frame t - direction, zero where that frame does not exist; the rest is copied. One pass over the
    output; direction -1 is the adjoint (the backward pass) of direction +1. Any dense layout (the
    output has the input's strides: channels_last stays channels_last); on CUDA a Triton kernel."""
    if x.device.type == "cuda" and x.dtype in (torch.float32, torch.bfloat16, torch.float16):
        from .triton_kernels import available, shift_forward

        if available():
            return shift_forward(x, fold, direction)
    out = torch.empty_like(x)
    _shift(out, x, 0, fold, direction)
    _shift(out, x, fold, 2 * fold, -direction)
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out


@temporal_shift.register_fake
def _temporal_shift_fake(x, fold, direction):
    return torch.empty_like(x)


def _temporal_shift_setup(ctx, inputs, output):
    ctx.fold, ctx.direction = inputs[1], inputs[2]


def _temporal_shift_backward(ctx, grad):
    return temporal_shift(grad, ctx.fold, -ctx.direction), None, None


temporal_shift.register_autograd(_temporal_shift_backward, setup_context=_temporal_shift_setup)

# fvcore handles (tinlab.measure.flops; declared with the registration): a shift moves data only.
FLOP_HANDLES = {"tinlab::temporal_shift": lambda inputs, outputs: 0}


class TemporalShift(nn.Module):
    """Shift 1/shift_div of the channels one frame back and another 1/shift_div one frame forward.

    Channels [0, fold): ``y[t] = x[t + 1]`` (zero at t = T - 1); channels [fold, 2 fold):
    ``y[t] = x[t - 1]`` (zero at t = 0); the rest unchanged; ``fold = C // shift_div``. A custom op
    whose backward is the opposite shift: the official slice-assignment version makes autograd
    chain one full-size copy per assignment in the backward pass.

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
        shape = (nt // self.num_segments, self.num_segments, c, *x.shape[2:])
        try:
            x5 = x.view(shape)  # contiguous or channels_last: a view, no copy
        except RuntimeError:
            x5 = x.contiguous().view(shape)
        return temporal_shift(x5, self.fold, 1).view_as(x)
