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

* :func:`interlace` is the default. It gathers whole (frame, group) slabs with two row look-ups and
  blends them in one custom op (``tinlab::blend_rows``) with an analytic backward: autograd stores only
  the input, the two index vectors and the two coefficient vectors, never a shifted copy of the
  activation. Being a ``torch.library`` op, it is one node under ``torch.jit.trace`` (so fvcore can
  count it) and opaque to ``torch.compile`` (no graph break).
* :func:`interlace_reference` is the naive gather-based version written with plain autograd ops; it
  is kept as a test oracle and as the baseline of the operator benchmarks.
"""
from __future__ import annotations

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


# --- tinlab::blend_rows: y[m] = a0[m] * x[i0[m]] + a1[m] * x[i1[m]] over rows of a 2-D tensor --------

@torch.library.custom_op("tinlab::blend_rows", mutates_args=())
def blend_rows(x: Tensor, idx0: Tensor, idx1: Tensor, a0: Tensor, a1: Tensor) -> Tensor:
    """Rows ``m`` of the result: ``a0[m] * x[idx0[m]] + a1[m] * x[idx1[m]]`` (x is (R, L))."""
    y = torch.index_select(x, 0, idx0).mul_(a0.unsqueeze(1))
    return y.addcmul_(torch.index_select(x, 0, idx1), a1.unsqueeze(1))


@blend_rows.register_fake
def _blend_rows_fake(x, idx0, idx1, a0, a1):
    return x.new_empty((idx0.shape[0], x.shape[1]))


def _blend_rows_setup(ctx, inputs, output):
    x, idx0, idx1, a0, a1 = inputs
    ctx.save_for_backward(x, idx0, idx1, a0, a1)


def _blend_rows_backward(ctx, grad):
    x, idx0, idx1, a0, a1 = ctx.saved_tensors
    grad_x = grad_a0 = grad_a1 = None
    if ctx.needs_input_grad[0]:
        # The adjoint of a gather is a scatter-add to the SAME rows it read from: a tap that reads
        # frame t - f for output t sends its gradient back to frame t - f (i.e. shifted by -O).
        grad_x = torch.zeros_like(x)
        grad_x.index_add_(0, idx0, grad * a0.unsqueeze(1))
        grad_x.index_add_(0, idx1, grad * a1.unsqueeze(1))
    if ctx.needs_input_grad[3]:
        grad_a0 = (grad * torch.index_select(x, 0, idx0)).sum(1)
    if ctx.needs_input_grad[4]:
        grad_a1 = (grad * torch.index_select(x, 0, idx1)).sum(1)
    return grad_x, None, None, grad_a0, grad_a1


blend_rows.register_autograd(_blend_rows_backward, setup_context=_blend_rows_setup)


def interlace_rows(x_rows: Tensor, num_segments: int, rows_per_frame: int, offsets: Tensor,
                   weights: Tensor | None, boundary: str) -> Tensor:
    """Interlace the first G row-groups of every frame of ``x_rows``.

    ``x_rows`` is a clip viewed as (N * T * rows_per_frame, L): each frame is ``rows_per_frame``
    contiguous rows of L elements, and channel group g of a frame is its row g. Only rows
    ``g < G = offsets.shape[1]`` are read, so a caller can interlace the leading channels of a
    tensor without slicing them out first (TIN shifts only the first C/4 channels).
    Returns (N, T, G, L).
    """
    n, g = offsets.shape
    src0, src1, a0, a1 = interlace_coefficients(offsets, weights, num_segments, boundary, x_rows.dtype)
    # Row number of (video n, frame s, group g) in x_rows.
    base = (torch.arange(n, device=x_rows.device).view(-1, 1, 1) * num_segments) * rows_per_frame
    grp = torch.arange(g, device=x_rows.device).view(1, 1, -1)
    idx0 = (base + src0 * rows_per_frame + grp).reshape(-1)
    idx1 = (base + src1 * rows_per_frame + grp).reshape(-1)
    y = blend_rows(x_rows, idx0, idx1, a0.reshape(-1), a1.reshape(-1))
    return y.view(n, num_segments, g, x_rows.shape[1])


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
    rows = x.contiguous().view(n * t * g, (c // g) * h * w)
    return interlace_rows(rows, t, g, offsets, weights, boundary).view(n, t, c, h, w)


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
