"""TIN: the Temporal Interlacing module (Shao et al., AAAI 2020), as the official code builds it.

Applied to the input of conv1 in the residual branch of every block (see ``tinlab.models``):

1. ``fold = C // shift_div`` leading channels are interlaced, the rest pass unchanged.
2. Descriptor: spatial mean of those channels, (N, fold, T) (paper Eq. 1).
3. OffsetNet (Eq. 2): Conv1d(fold -> 1, k=3) -> Linear(T, T) -> ReLU -> Linear(T, G) -> z, offsets
   ``o = 2 * offset_range * (sigmoid(z) - 0.5)`` in (-offset_range, offset_range); the last bias starts
   at ``logit(0.5 + 0.25 / offset_range)`` (0.5108 for the official range 2), i.e. offsets near +0.5.
4. WeightNet: Conv1d(fold -> G, k=3) -> v, ``w = 2 * sigmoid(v)`` in (0, 2); bias 0 so w starts at 1.
5. Reverse offsets (default): groups (o_1..o_G, -o_1..-o_G) over 2G equal channel groups of the fold;
   the reverse groups reuse the weights of their twins.
6. Fractional shift with linear interpolation and temporal attention: :func:`tinlab.ops.interlace`.

Steps 3-6 after the nets' layers run as ONE custom op, ``tinlab::tin_interlace``
(:mod:`tinlab.ops.interlacing`), from the nets' pre-activations: a TIN block issues about 10 dispatched
ops in eager mode (TSM: 3), not ~50. On CUDA steps 2-4 are one op too, ``tinlab::tin_nets`` (below):
a TIN block is then 2 ops in inference and ~9 kernel launches per training step. Unlike the official code, nothing is copied to the host in the
forward pass (no debug buffers). To read the offsets and weights, hook ``offset_net`` / ``weight_net`` (a hooked
net runs as its modules, on any device): their outputs are the pre-activations z (N, G) and v (N, G, T), and their ``to_offsets`` /
``to_weights`` give the offsets (N, G) and weights (N, T, G) before the reverse groups
(:class:`tinlab.engine.callbacks.InterlaceProbe`). The input keeps its memory format (channels_last
included): nothing is made contiguous.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .interlacing import BOUNDARIES, _dense, _triton_supports, tin_interlace, tin_interlace_backward


@torch.library.custom_op("tinlab::leading_row_mean", mutates_args=())
def leading_row_mean(x: Tensor, rows: int) -> Tensor:
    """x (N, T, R, Cg, H*W): spatial mean of every channel of the first ``rows`` rows, channels first as
    the nets' Conv1d reads it -> (N, rows*Cg, T)."""
    return x[:, :, :rows].mean(-1).flatten(2).transpose(1, 2).contiguous()


@leading_row_mean.register_fake
def _leading_row_mean_fake(x, rows):
    return x.new_empty(x.shape[0], rows * x.shape[3], x.shape[1])


def _leading_row_mean_setup(ctx, inputs, output):
    ctx.shape, ctx.rows = inputs[0].shape, inputs[1]


def _leading_row_mean_backward(ctx, grad):
    # A zero-stride expansion of (N, T, R, Cg, 1), in the input's own shape: autograd adds it in place
    # into the interlace gradient of the same tensor, with no full-size zero tensor and no reshape copy.
    # Two launches (the scaling, the zero rows appended), where a zero tensor, a division and a copy were three.
    n, t, r, cg, hw = ctx.shape
    lead = (grad.transpose(1, 2) / hw).reshape(n, t, ctx.rows, cg, 1)
    small = torch.nn.functional.pad(lead, (0, 0, 0, 0, 0, r - ctx.rows)) if r > ctx.rows else lead
    return small.expand(n, t, r, cg, hw), None


leading_row_mean.register_autograd(_leading_row_mean_backward, setup_context=_leading_row_mean_setup)


# --- tinlab::tin_nets: the descriptor, OffsetNet and WeightNet of a TIN block as one op (CUDA) ----------
#
# On CUDA (and on the meta device, where launches are counted) a TIN block computes its descriptor and both
# nets in two kernel launches, and their backward in one launch and one sum: as separate modules they are
# ~22 launches per block per training step (the mean, two convolutions, two linear layers, a ReLU and
# their backwards). The modules keep the parameters and define the function; the CPU path runs them.


def _descriptor_dtype(rows: Tensor) -> torch.dtype:
    """The descriptor is averaged in fp32 at least (float64 stays float64)."""
    return torch.promote_types(rows.dtype, torch.float32)


def _fusable(rows: Tensor) -> bool:
    """Whether a TIN block's nets fuse on this device: CUDA with Triton, or the meta device (launch counts)."""
    return rows.device.type == "meta" or (rows.device.type == "cuda" and _triton_supports(rows))


def _nets_reference(rows: Tensor, groups_in: int, params: list) -> tuple[Tensor, Tensor, Tensor]:
    """The nets written with PyTorch ops (any device; the CUDA kernels are tested against it): z, v (empty
    without WeightNet) in the parameters' dtype and the descriptor (N, F, T), fp32 at least."""
    wo, bo, w1, b1, w2, b2, ww, bw = params
    d = rows[:, :, :groups_in].to(_descriptor_dtype(rows)).mean(-1).flatten(2).transpose(1, 2)
    dd = d.to(w2.dtype)
    z = F.linear(F.relu(F.linear(F.conv1d(dd, wo, bo, padding=1).squeeze(1), w1, b1)), w2, b2)
    v = F.conv1d(dd, ww, bw, padding=1) if ww is not None else z.new_empty(0)
    return z, v, d.contiguous()


@torch.library.custom_op("tinlab::tin_nets", mutates_args=())
def tin_nets(rows: Tensor, groups_in: int, conv_o_weight: Tensor, conv_o_bias: Tensor, fc1_weight: Tensor,
             fc1_bias: Tensor, fc2_weight: Tensor, fc2_bias: Tensor, conv_w_weight: Optional[Tensor],
             conv_w_bias: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """OffsetNet's z (N, G) and WeightNet's v (N, G, T) (empty without it) from ``rows`` (N, T, R, Cg, L)
    whose first ``groups_in`` rows are the fold, and the fp32 descriptor (N, F, T) they read (saved for
    the backward, not differentiable). CUDA: two Triton launches; elsewhere :func:`_nets_reference`."""
    params = [conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, conv_w_weight, conv_w_bias]
    if rows.device.type == "cuda" and _triton_supports(rows):
        from .triton_kernels import tin_nets_forward

        return tin_nets_forward(rows, groups_in, params, fc2_weight.dtype)
    return _nets_reference(rows, groups_in, params)


@tin_nets.register_fake
def _tin_nets_fake(rows, groups_in, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias,
                   conv_w_weight, conv_w_bias):
    n, t, _, cg = rows.shape[:4]
    g = fc2_weight.shape[0]
    z = fc2_weight.new_empty(n, g)
    v = fc2_weight.new_empty(n, g, t) if conv_w_weight is not None else fc2_weight.new_empty(0)
    return z, v, rows.new_empty(n, groups_in * cg, t, dtype=_descriptor_dtype(rows))


def _tin_nets_setup(ctx, inputs, output):
    rows, groups_in, *params = inputs
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # no zero gradient made for the descriptor
    ctx.save_for_backward(output[2], *params)
    ctx.rows = (tuple(rows.shape), rows.dtype)
    ctx.weights = params[6] is not None


def _tin_nets_backward(ctx, grad_z, grad_v, _):
    d, *params = ctx.saved_tensors
    shape, dtype = ctx.rows
    if grad_z is None and grad_v is None:
        return (None,) * 10
    grad_z = grad_z if grad_z is not None else torch.zeros_like(params[4][:, 0]).expand(shape[0], -1)
    if ctx.weights and grad_v is None:
        grad_v = d.new_zeros(shape[0], params[6].shape[0], shape[1], dtype=params[6].dtype)
    small, *grads = tin_nets_backward(d, *params, grad_z, grad_v if ctx.weights else None, list(shape), dtype)
    grads = [g if p is not None else None for g, p in zip(grads, params)]
    # a zero-stride expansion over the L elements: autograd adds it into the interlacing's gradient of rows
    return (small.expand(shape), None, *grads)


@torch.library.custom_op("tinlab::tin_nets_backward", mutates_args=())
def tin_nets_backward(descriptor: Tensor, conv_o_weight: Tensor, conv_o_bias: Tensor, fc1_weight: Tensor,
                      fc1_bias: Tensor, fc2_weight: Tensor, fc2_bias: Tensor, conv_w_weight: Optional[Tensor],
                      conv_w_bias: Optional[Tensor], grad_z: Tensor, grad_v: Optional[Tensor],
                      rows_shape: list[int], rows_dtype: torch.dtype) -> list[Tensor]:
    """Backward of :func:`tin_nets`: the gradient of the rows' mean as (N, T, R, Cg, 1) (zero beyond the
    fold) and the 8 parameters' gradients (empty for absent ones). CUDA: one Triton launch (a program per
    video) and one sum over videos; elsewhere the same chain rule in PyTorch (:func:`_nets_backward_reference`)."""
    params = [conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, conv_w_weight, conv_w_bias]
    if descriptor.device.type == "cuda" and _triton_supports(descriptor.new_empty(0, dtype=rows_dtype)):
        from .triton_kernels import tin_nets_backward as launch

        small, grads = launch(tuple(rows_shape), descriptor, params, grad_z, grad_v, rows_dtype)
    else:
        small, grads = _nets_backward_reference(descriptor, params, grad_z, grad_v, rows_shape, rows_dtype)
    return [small] + [g if g is not None else descriptor.new_empty(0) for g in grads]


def _nets_backward_reference(d: Tensor, params: list, grad_z: Tensor, grad_v: Tensor | None, rows_shape,
                             rows_dtype) -> tuple[Tensor, list]:
    """The chain rule through the nets written out with PyTorch ops (autograd does not run inside an op)."""
    n, t, r, cg = rows_shape[:4]
    l = math.prod(rows_shape[4:])
    wo, bo, w1, b1, w2, b2, ww, bw = params
    dd = d.to(w2.dtype)
    c = F.conv1d(dd, wo, bo, padding=1).squeeze(1)
    h = F.linear(c, w1, b1)
    gh = (grad_z @ w2) * (h > 0)
    gc = (gh @ w1).unsqueeze(1)
    grads = [torch.nn.grad.conv1d_weight(dd, wo.shape, gc, padding=1), gc.sum((0, 2)), gh.t() @ c, gh.sum(0),
             grad_z.t() @ F.relu(h), grad_z.sum(0), None, None]
    gd = torch.nn.grad.conv1d_input(dd.shape, wo, gc, padding=1)
    if ww is not None:
        gv = grad_v if grad_v is not None else dd.new_zeros(n, ww.shape[0], t)
        grads[6:] = [torch.nn.grad.conv1d_weight(dd, ww.shape, gv, padding=1), gv.sum((0, 2))]
        gd = gd + torch.nn.grad.conv1d_input(dd.shape, ww, gv, padding=1)
    fold = gd.shape[1] // cg
    small = torch.zeros(n, t, r, cg, 1, dtype=rows_dtype, device=d.device)
    small[:, :, :fold] = (gd.transpose(1, 2) / l).reshape(n, t, fold, cg, 1)
    return small, grads


@tin_nets_backward.register_fake
def _tin_nets_backward_fake(descriptor, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias,
                            conv_w_weight, conv_w_bias, grad_z, grad_v, rows_shape, rows_dtype):
    n, t, r, cg = rows_shape[:4]
    params = [conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, conv_w_weight, conv_w_bias]
    return [descriptor.new_empty(n, t, r, cg, 1, dtype=rows_dtype)] + [
        torch.empty_like(p) if p is not None else descriptor.new_empty(0) for p in params]


tin_nets.register_autograd(_tin_nets_backward, setup_context=_tin_nets_setup)


# --- tinlab::tin_block: a whole TIN block as one autograd node (CUDA and meta) ---------------------------
#
# tin_nets then tin_interlace, and one backward: the coefficient gradients give dL/dz, dL/dv; the nets'
# backward gives the descriptor's gradient; the data-gradient kernel adds it while it writes dL/d(rows). As
# two nodes, autograd would add the two gradients of rows in a separate pass over the whole activation.

@torch.library.custom_op("tinlab::tin_block", mutates_args=())
def tin_block(rows: Tensor, groups_in: int, conv_o_weight: Tensor, conv_o_bias: Tensor, fc1_weight: Tensor,
              fc1_bias: Tensor, fc2_weight: Tensor, fc2_bias: Tensor, conv_w_weight: Optional[Tensor],
              conv_w_bias: Optional[Tensor], offset_range: float, reverse: bool, boundary: str
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """TIN's whole output for ``rows`` (N, T, R, Cg, L), and the nets' z, v and the descriptor it used (not
    differentiable; saved for the backward): :func:`tin_nets` then :func:`tin_interlace`."""
    z, v, d = tin_nets(rows, groups_in, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias,
                       conv_w_weight, conv_w_bias)
    y = tin_interlace(rows, z, v if conv_w_weight is not None else None, offset_range, reverse, boundary)
    return y, z, v, d


@tin_block.register_fake
def _tin_block_fake(rows, groups_in, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias,
                    conv_w_weight, conv_w_bias, offset_range, reverse, boundary):
    z, v, d = _tin_nets_fake(rows, groups_in, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight,
                             fc2_bias, conv_w_weight, conv_w_bias)
    return torch.empty_like(rows), z, v, d


def _tin_block_setup(ctx, inputs, output):
    rows, groups_in, *params = inputs[:10]
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)  # no zero gradients made for z, v, d (3 launches per block)
    ctx.save_for_backward(rows, *output[1:], *params)
    ctx.options = inputs[10:]
    ctx.weights = params[6] is not None


def _tin_block_backward(ctx, grad_y, *_):
    rows, z, v, d, *params = ctx.saved_tensors
    if grad_y is None:
        return (None,) * 13
    grads = tin_block_backward(rows, _dense(grad_y, rows), z, v if ctx.weights else None, d, *params, *ctx.options)
    return (grads[0], None, *[g if p is not None else None for g, p in zip(grads[1:], params)], None, None, None)


@torch.library.custom_op("tinlab::tin_block_backward", mutates_args=())
def tin_block_backward(rows: Tensor, grad: Tensor, z: Tensor, v: Optional[Tensor], descriptor: Tensor,
                       conv_o_weight: Tensor, conv_o_bias: Tensor, fc1_weight: Tensor, fc1_bias: Tensor,
                       fc2_weight: Tensor, fc2_bias: Tensor, conv_w_weight: Optional[Tensor],
                       conv_w_bias: Optional[Tensor], offset_range: float, reverse: bool, boundary: str
                       ) -> list[Tensor]:
    """dL/d(rows) and the nets' 8 parameter gradients (empty for absent ones) of :func:`tin_block`. CUDA:
    the coefficient kernel and its two sums, the nets' kernel and its sum, then the data-gradient kernel,
    which adds the descriptor's gradient as it writes (6 launches); elsewhere the same chain in PyTorch."""
    params = [conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, conv_w_weight, conv_w_bias]
    options = (offset_range, reverse, boundary)
    if rows.device.type == "cuda" and _triton_supports(rows):
        from .triton_kernels import tin_block_backward as launch

        grad_rows, grads = launch(rows, grad, z, v, descriptor, params, *options)
    else:
        grad_x, grad_z, grad_v = tin_interlace_backward(rows, z, v, grad, *options, True, True, v is not None)
        small, grads = _nets_backward_reference(descriptor, params, grad_z, grad_v if v is not None else None,
                                                list(rows.shape), rows.dtype)
        grad_rows = grad_x + small
    return [grad_rows] + [g if g is not None else rows.new_empty(0) for g in grads]


@tin_block_backward.register_fake
def _tin_block_backward_fake(rows, grad, z, v, descriptor, conv_o_weight, conv_o_bias, fc1_weight, fc1_bias,
                             fc2_weight, fc2_bias, conv_w_weight, conv_w_bias, offset_range, reverse, boundary):
    params = [conv_o_weight, conv_o_bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, conv_w_weight, conv_w_bias]
    return [torch.empty_like(rows)] + [torch.empty_like(p) if p is not None else rows.new_empty(0) for p in params]


tin_block.register_autograd(_tin_block_backward, setup_context=_tin_block_setup)


def _shape(value) -> list[int]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


# fvcore handles for TIN's custom ops (tinlab.measure.cost; declared with the registration, also for
# r-TCN, which shares the descriptor): the descriptor is a mean, 1 per input element averaged; the
# interlacing is a0 * x0 + a1 * x1 per interlaced element, the frame weight folded into a0 / a1: 2.
def _tin_interlace_flops(inputs, outputs) -> int:
    """What tinlab::tin_interlace computes (its decomposition, tin_coefficients + the blend): one multiply
    per offset and per frame weight (the scalings), per coefficient the boundary mask (zero fill) and the
    weight (attention), and 2 per interlaced element."""
    n, t, r, cg, *spatial = _shape(inputs[0])
    g = _shape(inputs[1])[1]
    weights = _shape(inputs[2]) is not None
    rows = n * t * g * (2 if inputs[4].toIValue() else 1)
    masks = 2 * rows if inputs[5].toIValue() == "zero" else 0
    return n * g + (n * g * t + 2 * rows if weights else 0) + masks + 2 * rows * cg * math.prod(spatial)


FLOP_HANDLES = {
    "tinlab::leading_row_mean": lambda inputs, outputs: math.prod(_shape(outputs[0])) * _shape(inputs[0])[-1],
    "tinlab::interlace_frames": lambda inputs, outputs: 2 * math.prod(_shape(inputs[1])) * math.prod(
        _shape(inputs[0])[3:]),
    "tinlab::tin_interlace": _tin_interlace_flops,
}


class OffsetNet(nn.Module):
    """Per-video offsets (N, groups) from the (N, fold, T) descriptor (forward: their pre-activation)."""

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
        """The pre-activation z (N, groups); :meth:`to_offsets` maps it to the offsets."""
        return self.fc2(self.relu(self.fc1(self.conv(descriptor).squeeze(1))))

    def to_offsets(self, z: Tensor) -> Tensor:
        return 2 * self.offset_range * (torch.sigmoid(z) - 0.5)


class WeightNet(nn.Module):
    """Per-frame weights (N, T, groups) in (0, 2) from the (N, fold, T) descriptor (forward: their
    pre-activation (N, groups, T))."""

    def __init__(self, fold: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(fold, groups, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.bias)

    def forward(self, descriptor: Tensor) -> Tensor:
        return self.conv(descriptor)

    @staticmethod
    def to_weights(v: Tensor) -> Tensor:
        return 2 * torch.sigmoid(v).transpose(1, 2)


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
        if not offset_range > 0.5:  # offsets start at +0.5: the last bias is logit(0.5 + 0.25 / offset_range)
            raise ValueError(f"offset_range must be > 0.5 (offsets start at +0.5, inside (-r, r)), got {offset_range}")
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
        included, from the (N*T, C, H, W) input (for analysis and r-TCN; TIN's forward fuses them)."""
        return self._offsets_and_weights(*self._nets(self._rows(x)))

    def _rows(self, x: Tensor) -> Tensor:
        """x as (N, T, R, Cg, H*W): row g < 2G of a frame is channel group g of the fold (Cg channels). A
        view in either memory format (contiguous or channels_last); other layouts are made contiguous."""
        nt, c = x.shape[:2]
        if x.dim() != 4 or c != self.channels or nt % self.num_segments:
            raise ValueError(f"{type(self).__name__} expects (N*T, {self.channels}, H, W) with T = "
                             f"{self.num_segments} dividing the first dimension, got {tuple(x.shape)}")
        cg = self.fold // self.num_channel_groups
        shape = (nt // self.num_segments, self.num_segments, c // cg, cg, -1)
        try:
            return x.view(shape)
        except RuntimeError:  # not viewable (e.g. a slice): one copy
            return x.contiguous().view(shape)

    def _nets(self, rows: Tensor) -> tuple[Tensor, Tensor | None]:
        """The nets' pre-activations z (N, G) and v (N, G, T) or None, from the fold's descriptor."""
        if self._fuse_nets(rows):
            z, v, _ = tin_nets(rows, self.num_channel_groups, *self._net_parameters())
            return z, (v if self.weight_net is not None else None)
        descriptor = leading_row_mean(rows, self.num_channel_groups)  # (N, fold, T): the per-channel spatial mean
        return self.offset_net(descriptor), self.weight_net(descriptor) if self.weight_net is not None else None

    def _fuse_nets(self, rows: Tensor) -> bool:
        """Whether the descriptor and the nets run as one op (:func:`tin_nets`): on CUDA with Triton, and on
        the meta device (where launches are counted), unless a forward hook watches a net or one of its
        layers (:class:`tinlab.engine.callbacks.InterlaceProbe` while it samples, a user's hook): the modules
        then run, as they always do on the CPU, whose training numerics stay those of every reference."""
        return _fusable(rows) and not self._nets_hooked()

    def _nets_hooked(self) -> bool:
        nets = [self.offset_net] + ([self.weight_net] if self.weight_net is not None else [])
        return any(m._forward_hooks or m._forward_pre_hooks for net in nets for m in net.modules())

    def _net_parameters(self) -> list[Tensor | None]:
        """OffsetNet's conv, fc1, fc2 and WeightNet's conv (None, None without attention): weight, bias each."""
        o, w = self.offset_net, self.weight_net
        return [o.conv.weight, o.conv.bias, o.fc1.weight, o.fc1.bias, o.fc2.weight, o.fc2.bias,
                w.conv.weight if w is not None else None, w.conv.bias if w is not None else None]

    def _offsets_and_weights(self, z: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor | None]:
        offsets = self.offset_net.to_offsets(z)
        weights = self.weight_net.to_weights(v) if v is not None else None
        if self.reverse:
            offsets = torch.cat([offsets, -offsets], 1)
            if weights is not None:
                weights = torch.cat([weights, weights], 2)
        return offsets, weights

    def aggregate(self, rows: Tensor, z: Tensor, v: Tensor | None) -> Tensor:
        """The whole output, shaped like ``rows`` (N, T, R, Cg, H*W): the fold interlaced, the rest copied;
        TIN's one fused op (r-TCN and the benchmarks' naive gather override this)."""
        return tin_interlace(rows, z, v, self.offset_range, self.reverse, self.boundary)

    def aggregate_fold(self, rows: Tensor, fn) -> Tensor:
        """The fold aggregated by ``fn`` on (N, T, fold, H*W, 1) instead of the fused op (r-TCN's
        convolution, the naive gather of the benchmarks); the other channels copied."""
        n, t = rows.shape[:2]
        x5 = rows.reshape(n, t, self.channels, -1)
        y = fn(x5[:, :, :self.fold].unsqueeze(-1)).squeeze(-1)
        return torch.cat([y, x5[:, :, self.fold:]], 2).view_as(rows)

    def forward(self, x: Tensor) -> Tensor:
        rows = self._rows(x)  # ONE tensor feeds both consumers: their gradients meet before any reshape
        if type(self).aggregate is TemporalInterlace.aggregate and self._fuse_nets(rows):
            return tin_block(rows, self.num_channel_groups, *self._net_parameters(), self.offset_range, self.reverse,
                             self.boundary)[0].view_as(x)  # CUDA: the whole block, one autograd node
        return self.aggregate(rows, *self._nets(rows)).view_as(x)
