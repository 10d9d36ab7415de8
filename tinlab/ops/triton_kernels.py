"""Triton kernels of TIN's interlacing, the CUDA implementations of ``tinlab::interlace_frames`` (given
coefficients) and ``tinlab::tin_interlace`` (coefficients computed in the kernel from the nets'
pre-activations), forward and backward, and of TSM's ``tinlab::temporal_shift`` (one pass; its
backward is the opposite shift).

* float32 / bfloat16 / float16 in and out, fp32 arithmetic and accumulation; float64 takes the
  PyTorch path (see ``tinlab.ops.interlacing._triton_supports``).
* Any dense layout: the kernels index ``x`` (N, T, R, Cg, L) through its strides and write the output
  with the same strides (``torch.empty_like``), so channels_last in is channels_last out, no copy.
* No atomics: the data gradient is computed by one program per (video, row, block of elements) that
  holds the gradient of all T frames of its chain in registers and writes each once (the adjoint's
  scatter-add is a sum over the T frames of the chain); the coefficient gradients by one program per
  (video, frame, row), each reducing its own elements. Results are deterministic.

Tested on CPU with ``TRITON_INTERPRET=1`` against the C kernel and the PyTorch path
(tests/ops/test_triton_kernels.py); ``make gpu-check`` runs them on a GPU.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from functools import lru_cache

import torch
from torch import Tensor

BLOCK = 1024  # elements per program of the streaming kernels: 8 per thread at 4 warps, 16 bytes of bf16
BLOCK_TILE = 256  # the generic interlace_frames backward holds a (T_PAD, BLOCK) register tile
REDUCE_CHUNK = 16 * BLOCK  # elements one program reduces in TIN's coefficient gradients (longer rows split)


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether Triton can be imported (``pip install tinlab[gpu]``; the test extra installs it too)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _kernels():
    from . import _triton_interlace as k

    return k.forward, k.backward_x, k.backward_coefficients


def _on(x: Tensor):
    """Launch on x's own device (Triton launches on the current one: a tensor on cuda:1 while cuda:0 is
    current would run on the wrong device's stream)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else nullcontext()


def _blocks(per_row: int, block: int = BLOCK) -> int:
    return -(-per_row // block)


def _layout(x: Tensor) -> tuple[int, int, int, int, int, tuple[int, ...], bool]:
    """N, T, R, Cg, L, the 5 strides of x viewed as (N, T, R, Cg, L), and whether channels are innermost."""
    n, t, r, cg = x.shape[:4]
    spatial = x.shape[4:]
    l = math.prod(spatial)
    # The spatial dims must collapse into one strided dim (true of contiguous and channels_last layouts).
    sl = x.stride(-1) if spatial else 1
    strides = (x.stride(0), x.stride(1), x.stride(2), x.stride(3), sl)
    return n, t, r, cg, l, strides, x.stride(3) < sl


def _layout_code(*tensors: Tensor) -> int:
    """The kernels' LAYOUT (``element_offsets``): 0 when every tensor's rows are dense (each row's Cg x L
    elements at stride 1: contiguous clips; vector accesses), else 2 if the first has channels innermost
    (channels_last), else 1. Codes 1 and 2 take any strides; they only order the elements differently."""
    layouts = [_layout(v) for v in tensors]
    if all(s[3] == l * s[4] and s[4] == 1 for _, _, _, _, l, s, _ in layouts):
        return 0
    return 2 if layouts[0][6] else 1


def _collapsible(x: Tensor) -> Tensor:
    """x as (N, T, R, Cg, L) with one stride for L (a copy only if its spatial dims do not collapse)."""
    flat = x.shape[:4] + (-1,)
    try:
        return x.view(flat)
    except RuntimeError:
        return x.contiguous().view(flat)


def _launch_forward(x: Tensor, coefficients: tuple, fused: tuple | None) -> Tensor:
    forward, _, _ = _kernels()
    x5 = _collapsible(x)
    y5 = torch.empty_like(x5)
    n, t, r, cg, l, sx, _ = _layout(x5)
    _, _, _, _, _, sy, _ = _layout(y5)
    layout = _layout_code(x5, y5)
    if fused is None:
        s0, s1, a0, a1 = coefficients
        gi, g, scale, z, v, reverse, weights, clamp = s0.shape[2], s0.shape[2], 0.0, a0, a0, False, False, False
    else:
        z, v, offset_range, reverse, clamp = fused
        g = z.shape[1]
        gi, scale, weights = g * (2 if reverse else 1), 2.0 * offset_range, v is not None
        s0 = s1 = a0 = a1 = z
        v = v.contiguous() if v is not None else z
        z = z.contiguous()
    with _on(x):
        forward[(n * t * r * _blocks(cg * l),)](
            x5, y5, s0, s1, a0, a1, z, v, t, r, g, gi, cg, l, scale, *sx, *sy, FUSED=fused is not None,
            REVERSE=reverse, WEIGHTS=weights, CLAMP=clamp, LAYOUT=layout, BLOCK=BLOCK)
    return y5.view(x.shape)


def interlace_forward(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor) -> Tensor:
    """``tinlab::interlace_frames`` on CUDA (or on CPU tensors under TRITON_INTERPRET=1). The source frames
    are checked on the device (an asynchronous assert: no host sync), as the CPU path checks them."""
    _assert_frames(src0, src1, x.shape[1])
    return _launch_forward(x, (src0.contiguous(), src1.contiguous(), a0.contiguous(), a1.contiguous()), None)


def _assert_frames(src0: Tensor, src1: Tensor, frames: int) -> None:
    """Direct calls of interlace_frames can pass any indices; the kernels read them unchecked."""
    if src0.device.type == "cuda":
        ok = (src0.min() >= 0) & (src0.max() < frames) & (src1.min() >= 0) & (src1.max() < frames)
        torch._assert_async(ok, f"interlace_frames: a source frame is outside [0, {frames})")
    elif src0.numel() and not bool((src0.min() >= 0) & (src0.max() < frames) & (src1.min() >= 0)
                                   & (src1.max() < frames)):
        raise IndexError(f"interlace_frames: a source frame is outside [0, {frames})")


def _check_rows(rows: Tensor, z: Tensor, reverse: bool) -> None:
    """The kernels read rows r < G (2G with reverse groups) of every frame: they must exist."""
    gi = z.shape[1] * (2 if reverse else 1)
    if rows.dim() < 4 or rows.shape[2] < gi:
        raise ValueError(f"TIN kernels: {gi} interlaced rows (G = {z.shape[1]}, reverse={reverse}) but the clip "
                         f"{tuple(rows.shape)} has {rows.shape[2] if rows.dim() > 2 else 0} rows per frame")


def tin_forward(rows: Tensor, z: Tensor, v: Tensor | None, offset_range: float, reverse: bool,
                boundary: str) -> Tensor:
    """``tinlab::tin_interlace`` on CUDA: one launch, the coefficients computed in the kernel."""
    _check_rows(rows, z, reverse)
    return _launch_forward(rows, (), (z, v, offset_range, reverse, boundary == "clamp"))


def interlace_backward(x: Tensor, src0: Tensor, src1: Tensor, a0: Tensor, a1: Tensor, grad: Tensor,
                       need_x: bool, need_a0: bool, need_a1: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``tinlab::interlace_frames`` w.r.t. x, a0, a1 (empty where not needed)."""
    _, backward_x, backward_coefficients = _kernels()
    x5, g5 = _collapsible(x), _collapsible(grad)
    n, t, r, cg, l, sx, _ = _layout(x5)
    layout = _layout_code(x5, g5)
    _, _, _, _, _, sg, _ = _layout(g5)
    src0, src1, a0, a1 = (v.contiguous() for v in (src0, src1, a0, a1))
    gi = src0.shape[2]
    grad_x, grad_a0, grad_a1 = x.new_empty(0), a0.new_empty(0), a1.new_empty(0)
    if need_x:
        gx5 = torch.empty_like(x5)
        _, _, _, _, _, sgx, _ = _layout(gx5)
        t_pad = max(16, 1 << (t - 1).bit_length())
        with _on(x):
            backward_x[(n * r * _blocks(cg * l, BLOCK_TILE),)](g5, gx5, src0, src1, a0, a1, t, r, gi, cg, l, *sg, *sgx,
                                                  LAYOUT=layout, T_PAD=t_pad, BLOCK=BLOCK_TILE)
        grad_x = gx5.view(x.shape)
    if need_a0 or need_a1:
        ga0 = torch.empty(a0.shape, dtype=torch.float32, device=x.device)
        ga1 = torch.empty(a1.shape, dtype=torch.float32, device=x.device)
        with _on(x):
            backward_coefficients[(n * t * gi,)](x5, g5, src0, src1, ga0, ga1, t, gi, cg, l, *sx, *sg,
                                                 LAYOUT=layout, BLOCK=BLOCK)
        grad_a0 = ga0.to(a0.dtype) if need_a0 else grad_a0
        grad_a1 = ga1.to(a1.dtype) if need_a1 else grad_a1
    return grad_x, grad_a0, grad_a1


def shift_forward(x: Tensor, fold: int, direction: int) -> Tensor:
    """``tinlab::temporal_shift`` on CUDA: x (N, T, C, ...) in any dense layout, one launch."""
    n, t, c = x.shape[:3]
    try:
        x4 = x.view(n, t, c, -1)
    except RuntimeError:
        x4 = x.contiguous().view(n, t, c, -1)
    y4 = torch.empty_like(x4)
    l = x4.shape[3]
    from . import _triton_interlace as k

    with _on(x):
        k.shift[(n * t * _blocks(c * l),)](x4, y4, t, c, l, fold, direction, *x4.stride(), *y4.stride(),
                                          CHANNELS_INNER=x4.stride(2) < x4.stride(3), BLOCK=BLOCK)
    return y4.view(x.shape)


def tin_backward(rows: Tensor, z: Tensor, v: Tensor | None, grad: Tensor, offset_range: float, reverse: bool,
                 boundary: str, need_x: bool, need_z: bool, need_v: bool, small: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``tinlab::tin_interlace`` w.r.t. rows, z, v (empty where not needed): the coefficients
    recomputed in the kernels in fp32 exactly as the forward kernel computed them (the same floor of
    every offset, whatever the input dtype), the data gradient as an O(T) gather, and the coefficient
    gradients chained into z and v inside the kernel: two launches and two small sums. ``small`` (N, T, R, Cg,
    1), if given, is added to the data gradient of each channel's elements in the same pass (the descriptor's
    gradient, tinlab::tin_block)."""
    from . import _triton_interlace as k

    _check_rows(rows, z, reverse)
    x5, g5 = _collapsible(rows), _collapsible(grad)
    n, t, r, cg, l, sx, _ = _layout(x5)
    _, _, _, _, _, sg, _ = _layout(g5)
    g = z.shape[1]
    gi, scale, weights, clamp = g * (2 if reverse else 1), 2.0 * offset_range, v is not None, boundary == "clamp"
    z = z.contiguous()
    v = v.contiguous() if v is not None else z
    grad_x, grad_z, grad_v = rows.new_empty(0), z.new_empty(0), z.new_empty(0)
    options = dict(REVERSE=reverse, WEIGHTS=weights, CLAMP=clamp, LAYOUT=_layout_code(x5, g5), BLOCK=BLOCK)
    with _on(rows):
        if need_x:
            gx5 = torch.empty_like(x5)
            _, _, _, _, _, sgx, _ = _layout(gx5)
            extra = small.contiguous() if small is not None else z
            k.tin_backward_x[(n * r * _blocks(cg * l),)](g5, gx5, z, v, extra, t, r, g, gi, cg, l, scale, *sg, *sgx,
                                                         ADD_SMALL=small is not None, **options)
            grad_x = gx5.view(rows.shape)
        if need_z or need_v:
            split = _blocks(cg * l, REDUCE_CHUNK)  # programs per (n, t, row): a long row is reduced in parallel
            gz_part = torch.empty(n, t, gi, split, dtype=torch.float32, device=rows.device)
            gv_part = torch.empty(n, t, gi, split, dtype=torch.float32, device=rows.device)
            k.tin_backward_coefficients[(n * t * gi * split,)](x5, g5, z, v, gz_part, gv_part, t, g, gi, cg, l,
                                                               REDUCE_CHUNK, split, scale, *sx, *sg, **options)
            halves = 2 if reverse else 1  # reverse rows g + G use the offset of group g, negated (in the kernel)
            if need_z:
                grad_z = gz_part.view(n, t, halves, g, split).sum((1, 2, 4)).to(z.dtype)
            if need_v:
                grad_v = gv_part.view(n, t, halves, g, split).sum((2, 4)).transpose(1, 2).to(v.dtype)
    return grad_x, grad_z, grad_v


def _pow2(value: int, least: int = 2) -> int:
    return max(least, 1 << (value - 1).bit_length())


def _net_tiles(f: int, t: int, g: int) -> dict:
    """Tile sizes of the nets' kernels: T and G padded to powers of two, channel blocks of at most 4,096
    (G_PAD x FB x T_PAD) values."""
    t_pad, g_pad = _pow2(t), _pow2(g)
    return dict(FB=max(2, min(64, _pow2(f), 4096 // (g_pad * t_pad))), T_PAD=t_pad, G_PAD=g_pad)


def tin_nets_forward(rows: Tensor, groups_in: int, params: list, out_dtype: torch.dtype
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """``tinlab::tin_nets`` on CUDA: the descriptor (one launch) and both nets (one launch, a program per
    video). Returns z (N, G), v (N, G, T) (empty without WeightNet) and the fp32 descriptor (N, F, T)."""
    from . import _triton_interlace as k

    x5 = _collapsible(rows)
    n, t, _, cg, l, sx, _ = _layout(x5)
    f = groups_in * cg
    wo, bo, w1, b1, w2, b2, ww, bw = (p.contiguous() if p is not None else None for p in params)
    g = w2.shape[0]
    d = torch.empty(n, f, t, dtype=torch.float32, device=rows.device)
    z = torch.empty(n, g, dtype=out_dtype, device=rows.device)
    v = torch.empty(n, g, t, dtype=out_dtype, device=rows.device) if ww is not None else z.new_empty(0)
    cb = 16
    with _on(rows):
        k.tin_descriptor[(n * t * -(-f // cb),)](x5, d, t, f, cg, l, 1.0 / l, *sx, CB=cb, LB=64)
        k.tin_nets_forward[(n,)](d, wo, bo, w1, b1, w2, b2, ww if ww is not None else wo,
                                 bw if bw is not None else bo, z, v if ww is not None else z, f, t, g,
                                 WEIGHTS=ww is not None, **_net_tiles(f, t, g))
    return z, v, d


def net_parameter_layout(params: list) -> list[tuple[int, int]]:
    """(offset, size) of each parameter of (conv_o w, b, fc1 w, b, fc2 w, b, conv_w w, b) in the flat
    per-video gradient rows of the nets' backward (absent parameters: size 0)."""
    layout, at = [], 0
    for p in params:
        size = p.numel() if p is not None else 0
        layout.append((at, size))
        at += size
    return layout


def tin_nets_backward(rows_shape: tuple, descriptor: Tensor, params: list, grad_z: Tensor,
                      grad_v: Tensor | None, small_dtype: torch.dtype) -> tuple[Tensor, list]:
    """Backward of ``tinlab::tin_nets`` on CUDA: one launch (a program per video) and one sum over videos.
    Returns the gradient of the rows' mean as (N, T, R, Cg, 1) (zero beyond the fold; the caller expands it
    over the L elements) and the parameters' gradients (None for absent ones)."""
    from . import _triton_interlace as k

    n, t, r, cg = rows_shape[:4]
    l = math.prod(rows_shape[4:])
    f = descriptor.shape[1]
    wo, bo, w1, b1, w2, b2, ww, bw = (p.contiguous() if p is not None else None for p in params)
    g = w2.shape[0]
    layout = net_parameter_layout(params)
    total = layout[-1][0] + layout[-1][1]
    part = torch.empty(n, total, dtype=torch.float32, device=descriptor.device)
    small = torch.empty(n, t, r, cg, 1, dtype=small_dtype, device=descriptor.device)
    weights = ww is not None
    gz = grad_z.contiguous()
    gv = grad_v.contiguous() if weights else gz
    offsets = [at for at, _ in layout[1:]]
    with _on(descriptor):
        k.tin_nets_backward[(n,)](descriptor, wo, bo, w1, b1, w2, ww if weights else wo, gz, gv, part, small,
                                  f, t, r * cg, g, 1.0 / l, *offsets, total, WEIGHTS=weights,
                                  **_net_tiles(f, t, g))
        flat = part.sum(0)
    grads = [flat[at:at + size].view(p.shape).to(p.dtype) if p is not None else None
             for (at, size), p in zip(layout, params)]
    return small, grads


def tin_block_backward(rows: Tensor, grad: Tensor, z: Tensor, v: Tensor | None, descriptor: Tensor, params: list,
                       offset_range: float, reverse: bool, boundary: str) -> tuple[Tensor, list]:
    """Backward of ``tinlab::tin_block`` on CUDA: dL/dz, dL/dv from the coefficient kernel (and its two sums),
    the nets' backward (a kernel and a sum) for the parameters and the descriptor's gradient, then the data
    gradient, which adds the descriptor's gradient in the same pass: 6 launches, one pass over the rows'
    gradient (autograd would otherwise add two gradients of the rows in a separate pass)."""
    options = (offset_range, reverse, boundary)
    _, grad_z, grad_v = tin_backward(rows, z, v, grad, *options, False, True, v is not None)
    small, grads = tin_nets_backward(tuple(rows.shape), descriptor, params, grad_z,
                                     grad_v if v is not None else None, rows.dtype)
    grad_rows, _, _ = tin_backward(rows, z, v, grad, *options, True, False, False, small=small)
    return grad_rows, grads
