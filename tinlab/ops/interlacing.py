"""Temporal interlacing: the fractional, per-group temporal shift of TIN (paper Sec. 3, Eq. 3-5).

For a clip ``x`` of shape (N, T, C, H, W) whose channels are split into G equal contiguous groups,
each video ``n`` and group ``g`` gets an offset ``O = offsets[n, g]`` and, optionally, per-frame
weights ``w = weights[n, :, g]``:

    y[n, t, g] = w[n, t, g] * x[n, t - O, g]

with ``x[t - O]`` linearly interpolated between frames: ``f = floor(O)``, ``lam = O - f``,
``x[t - O] = (1 - lam) * x[t - f] + lam * x[t - f - 1]``. Frames outside ``0 <= s < T`` are zero
(``boundary="zero"``, the official code) or the nearest end frame (``boundary="clamp"``, the paper's
"temporal extension"). A positive offset moves features forward in time (``O = +1``: ``y[t] = x[t-1]``).

Two implementations share this definition:

* :func:`interlace` is the default. It is one custom op (``tinlab::interlace_frames``) with an
  analytic backward: autograd stores only the input, the two source-frame index tensors and the two
  coefficient tensors, never a shifted copy of the activation. On CPU it runs a fused C kernel
  (``csrc/interlace.c``, one pass over the output, built on first use, see ``_kernel.py``); elsewhere,
  or without a compiler, two row gathers and a blend in PyTorch. Being a ``torch.library`` op, it is
  one node under ``torch.jit.trace`` (so fvcore can count it) and opaque to ``torch.compile`` (no
  graph break).
* :func:`interlace_reference` is the naive gather-based version written with plain autograd ops; it
  is kept as a test oracle and as the baseline of the operator benchmarks.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

BOUNDARIES = ("zero", "clamp")

__all__ = ["interlace", "interlace_reference", "interlace_coefficients", "BOUNDARIES"]


def _check(x: Tensor, offsets: Tensor, weights: Tensor | None, boundary: str) -> int:
    """Validate the functional arguments; return the number of groups G."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if x.dim() != 5:
        raise ValueError(f"x must have shape (N, T, C, H, W), got {tuple(x.shape)}")
    n, t, c = x.shape[:3]
    if offsets.dim() != 2 or offsets.shape[0] != n:
        raise ValueError(f"offsets must have shape (N, G) = ({n}, G) for x of shape {tuple(x.shape)}, "
                         f"got {tuple(offsets.shape)}")
    g = offsets.shape[1]
    if g == 0 or c % g:
        raise ValueError(f"the {c} channels of x cannot be split into G = {g} equal groups "
                         f"(offsets has shape {tuple(offsets.shape)})")
    if weights is not None and tuple(weights.shape) != (n, t, g):
        raise ValueError(f"weights must have shape (N, T, G) = {(n, t, g)}, got {tuple(weights.shape)}")
    if not torch.is_floating_point(offsets):
        raise TypeError(f"offsets must be a floating-point tensor, got {offsets.dtype}")
    return g


def interlace_coefficients(offsets: Tensor, weights: Tensor | None, num_segments: int,
                           boundary: str = "zero", dtype: torch.dtype | None = None
                           ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source frames and blend coefficients of the two interpolation taps.

    Returns ``(src0, src1, a0, a1)``, each (N, T, G): ``y[t] = a0 * x[src0] + a1 * x[src1]``. Source
    indices are always valid frame numbers; a tap that reads outside the clip under zero fill gets a
    zero coefficient. The coefficients are differentiable in ``offsets`` (through ``lam``) and
    ``weights``; the floor has zero derivative, as in the paper (Eq. 5).
    """
    t = torch.arange(num_segments, device=offsets.device)
    floor = torch.floor(offsets)
    lam = (offsets - floor).to(dtype or offsets.dtype)
    src0 = t.view(1, -1, 1) - floor.long().unsqueeze(1)  # (N, T, G): frame read by tap 0
    src1 = src0 - 1
    a0 = (1 - lam).unsqueeze(1).expand(-1, num_segments, -1)
    a1 = lam.unsqueeze(1).expand(-1, num_segments, -1)
    if boundary == "zero":
        a0 = a0 * ((src0 >= 0) & (src0 < num_segments)).to(a0.dtype)
        a1 = a1 * ((src1 >= 0) & (src1 < num_segments)).to(a1.dtype)
    src0 = src0.clamp(0, num_segments - 1)
    src1 = src1.clamp(0, num_segments - 1)
    if weights is not None:
        a0 = a0 * weights.to(a0.dtype)
        a1 = a1 * weights.to(a1.dtype)
    return src0, src1, a0, a1


# --- tinlab::interlace_frames: the fused op behind interlace() and the TIN module ----------------------
#
# x is a clip viewed as rows (N, T, R, ...): R rows per frame, each of L = prod(...) elements. Rows r < G are
# interlaced with the coefficients of interlace_coefficients(); rows r >= G are copied. One op writes
# the whole output, so TIN costs one pass over the activation, like TSM's shift.

@torch.library.custom_op("tinlab::interlace_frames", mutates_args=())
def interlace_frames(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor) -> Tensor:
    """``y[n, t, r] = a0 * x[n, src0, r] + a1 * x[n, src1, r]`` for rows r < G, ``x[n, t, r]`` above."""
    return _forward(x, src0, src1, a0, a1)


def _forward(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor) -> Tensor:
    """The interlacing with given coefficients: the C kernel on CPU, Triton on CUDA, else PyTorch."""
    if x.device.type == "cuda" and _triton_supports(x):
        from .triton_kernels import interlace_forward

        return interlace_forward(x, src0, src1, a0, a1)
    lib = _cpu_kernels(x, src0, src1, a0, a1)
    if lib is None:
        return _interlace_frames_torch(x, src0, src1, a0, a1)
    _check_indices(lib, src0, src1, x.shape[1])
    y = torch.empty_like(x)
    n, t, r = x.shape[:3]
    l = math.prod(x.shape[3:])
    fn = lib.interlace_fwd_f32 if x.dtype == torch.float32 else lib.interlace_fwd_f64
    fn(x.data_ptr(), src0.data_ptr(), src1.data_ptr(), a0.data_ptr(), a1.data_ptr(), y.data_ptr(),
       n, t, r, src0.shape[2], l, torch.get_num_threads())
    return y


def _triton_supports(x: Tensor) -> bool:
    """The Triton kernels take float32 / bfloat16 / float16 (fp32 accumulation) when Triton is installed;
    float64 and anything else take the PyTorch path."""
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    from .triton_kernels import available

    return available()


def _cpu_kernels(x: Tensor, *others: Tensor):
    """The compiled kernels if they apply (all on CPU and contiguous, x float32/64, indices int64,
    coefficients of x's dtype: the kernel reads raw pointers), else None (the PyTorch path)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    src0, src1, *coefficients = others
    if src0.dtype != torch.int64 or src1.dtype != torch.int64 or any(c.dtype != x.dtype for c in coefficients):
        return None
    if not all(v.is_contiguous() and v.device == x.device for v in (x, *others)):
        return None
    from ._kernel import kernels

    return kernels()


def _check_indices(lib, src0: Tensor, src1: Tensor, frames: int) -> None:
    """The C kernels read frames src0/src1 through raw pointers: an index outside [0, T) is an error here,
    as it is in the PyTorch path's index_select, never an out-of-bounds read."""
    bad = lib.interlace_first_bad_index(src0.data_ptr(), src1.data_ptr(), src0.numel(), frames)
    if bad >= 0:
        raise IndexError(f"interlace_frames: source frame {src0.view(-1)[bad].item()} / {src1.view(-1)[bad].item()} "
                         f"at position {bad} is outside [0, {frames})")


def _row_index(x: Tensor, src: Tensor) -> Tensor:
    """Flat row numbers in x.view(-1, L) of (video n, frame src[n, t, g], row g)."""
    n, t, r = x.shape[:3]
    g = src.shape[2]
    video = torch.arange(n, device=x.device).view(-1, 1, 1) * t
    return ((video + src) * r + torch.arange(g, device=x.device).view(1, 1, -1)).reshape(-1)


def _interlace_frames_torch(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor) -> Tensor:
    """Pure-PyTorch path (any device and dtype): two row gathers and a blend."""
    shape = x.shape
    x = x.reshape(*shape[:3], -1)
    n, t, r, l = x.shape
    g = src0.shape[2]
    rows = x.reshape(-1, l)
    shifted = torch.index_select(rows, 0, _row_index(x, src0)).mul_(a0.reshape(-1, 1))
    shifted.addcmul_(torch.index_select(rows, 0, _row_index(x, src1)), a1.reshape(-1, 1))
    shifted = shifted.view(n, t, g, l)
    if g == r:
        return shifted.view(shape)
    return torch.cat([shifted, x[:, :, g:]], 2).view(shape)


@interlace_frames.register_fake
def _interlace_frames_fake(x, src0, src1, a0, a1):
    return torch.empty_like(x)


def _interlace_frames_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _interlace_frames_backward(ctx, grad):
    x, src0, src1, a0, a1 = ctx.saved_tensors
    need_x, need_a0, need_a1 = ctx.needs_input_grad[0], ctx.needs_input_grad[3], ctx.needs_input_grad[4]
    grad_x, grad_a0, grad_a1 = interlace_frames_backward(x, src0, src1, a0, a1, _dense(grad, x),
                                                         need_x, need_a0, need_a1)
    return (grad_x if need_x else None), None, None, (grad_a0 if need_a0 else None), \
        (grad_a1 if need_a1 else None)


@torch.library.custom_op("tinlab::interlace_frames_backward", mutates_args=())
def interlace_frames_backward(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor, grad: Tensor,
                              need_x: bool, need_a0: bool, need_a1: bool
                              ) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. x, a0, a1 of :func:`interlace_frames` (empty tensors where not needed)."""
    return _backward(x, src0, src1, a0, a1, grad, need_x, need_a0, need_a1)


def _backward(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor, grad: Tensor, need_x: bool,
              need_a0: bool, need_a1: bool) -> tuple[Tensor, Tensor, Tensor]:
    if x.device.type == "cuda" and _triton_supports(x):
        from .triton_kernels import interlace_backward

        return interlace_backward(x, src0, src1, a0, a1, grad, need_x, need_a0, need_a1)
    lib = _cpu_kernels(x, src0, src1, a0, a1, grad)
    if lib is None:
        return _interlace_frames_backward_torch(x, src0, src1, a0, a1, grad, need_x, need_a0, need_a1)
    _check_indices(lib, src0, src1, x.shape[1])
    n, t, r = x.shape[:3]
    l = math.prod(x.shape[3:])
    grad_x = torch.empty_like(x) if need_x else x.new_empty(0)
    grad_a0 = torch.empty_like(a0) if need_a0 else a0.new_empty(0)
    grad_a1 = torch.empty_like(a1) if need_a1 else a1.new_empty(0)
    ptr = lambda v, need: v.data_ptr() if need else None
    fn = lib.interlace_bwd_f32 if x.dtype == torch.float32 else lib.interlace_bwd_f64
    fn(x.data_ptr(), src0.data_ptr(), src1.data_ptr(), a0.data_ptr(), a1.data_ptr(), grad.data_ptr(),
       ptr(grad_x, need_x), ptr(grad_a0, need_a0), ptr(grad_a1, need_a1), n, t, r, src0.shape[2], l,
       torch.get_num_threads())
    return grad_x, grad_a0, grad_a1


@interlace_frames_backward.register_fake
def _interlace_frames_backward_fake(x, src0, src1, a0, a1, grad, need_x, need_a0, need_a1):
    return (torch.empty_like(x) if need_x else x.new_empty(0),
            torch.empty_like(a0) if need_a0 else a0.new_empty(0),
            torch.empty_like(a1) if need_a1 else a1.new_empty(0))


def _interlace_frames_backward_torch(x, src0, src1, a0, a1, grad, need_x, need_a0, need_a1):
    shape = x.shape
    x, grad = x.reshape(*shape[:3], -1), grad.reshape(*shape[:3], -1)
    n, t, r, l = x.shape
    g = src0.shape[2]
    rows, grad_rows = x.reshape(-1, l), grad[:, :, :g].reshape(-1, l)
    idx0, idx1 = _row_index(x, src0), _row_index(x, src1)
    grad_x, grad_a0, grad_a1 = x.new_empty(0), a0.new_empty(0), a1.new_empty(0)
    if need_x:
        # The adjoint of a gather is a scatter-add to the SAME rows it read from: a tap that reads
        # frame t - f for output t sends its gradient back to frame t - f (i.e. shifted by -O).
        grad_x = grad.clone()
        grad_x[:, :, :g] = 0
        flat = grad_x.view(-1, l)
        flat.index_add_(0, idx0, grad_rows * a0.reshape(-1, 1))
        flat.index_add_(0, idx1, grad_rows * a1.reshape(-1, 1))
        grad_x = grad_x.view(shape)
    if need_a0:
        grad_a0 = (grad_rows * torch.index_select(rows, 0, idx0)).sum(1).view_as(a0)
    if need_a1:
        grad_a1 = (grad_rows * torch.index_select(rows, 0, idx1)).sum(1).view_as(a1)
    return grad_x, grad_a0, grad_a1


interlace_frames.register_autograd(_interlace_frames_backward, setup_context=_interlace_frames_setup)


def _dense(grad: Tensor, like: Tensor) -> Tensor:
    """``grad`` with the strides of ``like`` (the kernels read both with one set of strides)."""
    return grad if grad.stride() == like.stride() else torch.empty_like(like).copy_(grad)


# --- tinlab::tin_interlace: TIN's whole aggregation in one op ---------------------------------------
#
# From OffsetNet's and WeightNet's pre-activations: offsets o = 2 r (sigmoid(z) - 1/2), frame weights
# w = 2 sigmoid(v), reverse groups (-o, same w), the interpolation coefficients, and the interlacing of
# the leading rows. In eager mode a TIN block then issues about 10 dispatched ops instead of ~50 (the
# coefficient arithmetic on tiny tensors was 30 of them, each a kernel launch on a GPU).

def tin_coefficients(z: Tensor, v: Tensor | None, num_segments: int, offset_range: float, reverse: bool,
                     boundary: str, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(src0, src1, a0, a1) of TIN's interlacing from the nets' pre-activations z (N, G), v (N, G, T)."""
    offsets = 2 * offset_range * (torch.sigmoid(z) - 0.5)
    weights = 2 * torch.sigmoid(v).transpose(1, 2) if v is not None else None
    if reverse:
        offsets = torch.cat([offsets, -offsets], 1)
        weights = torch.cat([weights, weights], 2) if weights is not None else None
    src0, src1, a0, a1 = interlace_coefficients(offsets, weights, num_segments, boundary, dtype)
    return src0.contiguous(), src1.contiguous(), a0.contiguous(), a1.contiguous()


@torch.library.custom_op("tinlab::tin_interlace", mutates_args=())
def tin_interlace(rows: Tensor, z: Tensor, v: Optional[Tensor], offset_range: float, reverse: bool,
                  boundary: str) -> Tensor:
    """TIN's aggregation of ``rows`` (N, T, R, ...) (rows r < G' interlaced, G' = G or 2G with reverse
    groups; the rest copied) from OffsetNet's and WeightNet's pre-activations: :func:`tin_coefficients`
    then :func:`interlace_frames`, in one op."""
    if rows.device.type == "cuda" and _triton_supports(rows):
        from .triton_kernels import tin_forward

        return tin_forward(rows, z, v, offset_range, reverse, boundary)
    coefficients = tin_coefficients(z, v, rows.shape[1], offset_range, reverse, boundary, rows.dtype)
    return _forward(rows, *coefficients)


@tin_interlace.register_fake
def _tin_interlace_fake(rows, z, v, offset_range, reverse, boundary):
    return torch.empty_like(rows)


def _tin_interlace_setup(ctx, inputs, output):
    rows, z, v, offset_range, reverse, boundary = inputs
    ctx.save_for_backward(rows, z, v)
    ctx.options = (offset_range, reverse, boundary)


def _tin_interlace_backward(ctx, grad):
    rows, z, v = ctx.saved_tensors
    need_x, need_z, need_v = ctx.needs_input_grad[:3]
    need_v = need_v and v is not None
    if rows.device.type in ("cuda", "meta"):  # one op: the Triton kernels (meta: counted as the GPU runs it)
        grad_x, grad_z, grad_v = tin_interlace_backward(rows, z, v, _dense(grad, rows), *ctx.options, need_x,
                                                        need_z, need_v)
        return (grad_x if need_x else None), (grad_z if need_z else None), (grad_v if need_v else None), \
            None, None, None
    # CPU: the coefficients' small graph differentiated by autograd (the numerics every CPU reference was
    # trained with); the interlacing's own backward is the C kernel
    with torch.enable_grad():
        zc = z.detach().requires_grad_(need_z)
        vc = v.detach().requires_grad_(need_v) if v is not None else None
        src0, src1, a0, a1 = tin_coefficients(zc, vc, rows.shape[1], *ctx.options, rows.dtype)
    need_a = need_z or need_v
    grad_x, grad_a0, grad_a1 = interlace_frames_backward(rows, src0, src1, a0.detach(), a1.detach(),
                                                         _dense(grad, rows), need_x, need_a, need_a)
    grad_z = grad_v = None
    if need_a:
        wrt = [t for t, need in ((zc, need_z), (vc, need_v)) if need]
        grads = iter(torch.autograd.grad([a0, a1], wrt, [grad_a0, grad_a1]))
        grad_z = next(grads) if need_z else None
        grad_v = next(grads) if need_v else None
    return (grad_x if need_x else None), grad_z, grad_v, None, None, None


@torch.library.custom_op("tinlab::tin_interlace_backward", mutates_args=())
def tin_interlace_backward(rows: Tensor, z: Tensor, v: Optional[Tensor], grad: Tensor, offset_range: float,
                           reverse: bool, boundary: str, need_x: bool, need_z: bool, need_v: bool
                           ) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`tin_interlace` w.r.t. rows, z, v (empty tensors where not needed): TIN's
    backward on CUDA as one op, two Triton kernels that recompute the forward kernel's fp32 coefficients
    (so the backward differentiates the frames the forward read, in any dtype) and two small sums. Other
    devices: the same chain rule written out in PyTorch (training on the CPU differentiates the coefficient
    graph with autograd instead, see ``_tin_interlace_backward``; both are tested against the reference)."""
    if rows.device.type == "cuda" and _triton_supports(rows):
        from .triton_kernels import tin_backward

        return tin_backward(rows, z, v, grad, offset_range, reverse, boundary, need_x, need_z, need_v)
    src0, src1, a0, a1 = tin_coefficients(z, v, rows.shape[1], offset_range, reverse, boundary, rows.dtype)
    need_a = need_z or need_v
    grad_x, ga0, ga1 = _backward(rows, src0, src1, a0, a1, grad, need_x, need_a, need_a)
    grad_z = grad_v = z.new_empty(0)
    if need_a:  # the chain rule through the coefficients, written out (as the CUDA kernel does)
        t = rows.shape[1]
        sz = torch.sigmoid(z)
        offsets = 2 * offset_range * (sz - 0.5)  # the expression tin_coefficients floors: the same floor
        dodz = 2 * offset_range * sz * (1 - sz)
        if reverse:
            offsets, dodz = torch.cat([offsets, -offsets], 1), torch.cat([dodz, -dodz], 1)
        lam = (offsets - torch.floor(offsets)).unsqueeze(1)
        src0u = torch.arange(t, device=z.device).view(1, -1, 1) - torch.floor(offsets).long().unsqueeze(1)
        if boundary == "zero":
            m0 = ((src0u >= 0) & (src0u < t)).to(ga0.dtype)
            m1 = ((src0u >= 1) & (src0u < t + 1)).to(ga0.dtype)
        else:
            m0 = m1 = torch.ones((), dtype=ga0.dtype, device=z.device)
        halves = 2 if reverse else 1
        if v is not None:
            sv = torch.sigmoid(v).transpose(1, 2)  # (N, T, G)
            w, dwdv = (2 * sv).repeat(1, 1, halves), (2 * sv * (1 - sv)).repeat(1, 1, halves)
        else:
            w = dwdv = torch.ones((), dtype=ga0.dtype, device=z.device)
        if need_z:
            part = (ga1 * m1 - ga0 * m0) * w * dodz.unsqueeze(1)
            grad_z = part.view(*part.shape[:2], halves, -1).sum((1, 2)).to(z.dtype)
        if need_v:
            part = (ga0 * (1 - lam) * m0 + ga1 * lam * m1) * dwdv
            grad_v = part.view(*part.shape[:2], halves, -1).sum(2).transpose(1, 2).to(v.dtype)
    return grad_x if need_x else rows.new_empty(0), grad_z, grad_v


@tin_interlace_backward.register_fake
def _tin_interlace_backward_fake(rows, z, v, grad, offset_range, reverse, boundary, need_x, need_z, need_v):
    return (torch.empty_like(rows) if need_x else rows.new_empty(0), torch.empty_like(z) if need_z else z.new_empty(0),
            torch.empty_like(v) if need_v and v is not None else z.new_empty(0))


tin_interlace.register_autograd(_tin_interlace_backward, setup_context=_tin_interlace_setup)


def interlace_rows(x: Tensor, offsets: Tensor, weights: Tensor | None, boundary: str) -> Tensor:
    """Interlace the first G = offsets.shape[1] rows of every frame of x (N, T, R, ...); copy the rest.

    Row g of a frame is channel group g, so a caller interlaces the leading channels of a tensor
    without slicing them out first (TIN shifts only the first C/4 channels).
    """
    src0, src1, a0, a1 = interlace_coefficients(offsets, weights, x.shape[1], boundary, x.dtype)
    return interlace_frames(x, src0.contiguous(), src1.contiguous(), a0.contiguous(), a1.contiguous())


def interlace(x: Tensor, offsets: Tensor, weights: Tensor | None = None, boundary: str = "zero") -> Tensor:
    """Shift each channel group of a clip by a fractional number of frames (TIN's interlacing).

    Args:
        x: clip features (N, T, C, H, W).
        offsets: (N, G) frame offsets, one per video and channel group; channels are split into G
            equal contiguous groups. ``y[:, t, g] = x[:, t - O_g]`` (linear interpolation).
        weights: optional (N, T, G) per-frame weights multiplied onto the shifted groups
            (TIN's temporal attention).
        boundary: ``"zero"`` (frames beyond the clip are zero) or ``"clamp"`` (replicate end frames).

    Returns:
        Tensor of the shape of ``x``. Differentiable in ``x``, ``offsets`` and ``weights``.

    Example:
        >>> x = torch.randn(2, 8, 16, 7, 7)
        >>> y = interlace(x, torch.full((2, 2), 1.0))      # every group one frame forward
        >>> torch.equal(y[:, 1:], x[:, :-1]) and bool((y[:, 0] == 0).all())
        True
    """
    g = _check(x, offsets, weights, boundary)
    n, t, c, h, w = x.shape
    return interlace_rows(x.contiguous().view(n, t, g, -1), offsets, weights, boundary).view_as(x)


def interlace_reference(x: Tensor, offsets: Tensor, weights: Tensor | None = None,
                        boundary: str = "zero") -> Tensor:
    """Naive gather-based :func:`interlace` (test oracle and benchmark baseline).

    Materialises a full-size index tensor and both shifted copies of ``x``; autograd keeps them.
    """
    g = _check(x, offsets, weights, boundary)
    n, t, c, h, w = x.shape
    src0, src1, a0, a1 = interlace_coefficients(offsets, weights, t, boundary, x.dtype)
    xg = x.reshape(n, t, g, c // g, h, w)

    def gather(src: Tensor) -> Tensor:
        index = src.view(n, t, g, 1, 1, 1).expand(n, t, g, c // g, h, w)
        return torch.gather(xg, 1, index)

    y = a0.view(n, t, g, 1, 1, 1) * gather(src0) + a1.view(n, t, g, 1, 1, 1) * gather(src1)
    return y.reshape(n, t, c, h, w)
