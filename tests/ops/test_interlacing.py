"""tinlab.ops.interlacing: definition, gradients, the adjoint, TSM as a special case, errors."""
from __future__ import annotations

import pytest
import torch

from tinlab.ops import TemporalShift, interlace, interlace_reference, rtcn
from tinlab.ops.interlacing import interlace_coefficients, interlace_frames

D = torch.float64


def dense_matrices(offsets: torch.Tensor, t: int, boundary: str) -> torch.Tensor:
    """(N, G, T, T) interpolation matrices M with y[t] = sum_s M[t, s] x[s], built element by element
    from the definition y[t] = x[t - O] (an oracle independent of the library code)."""
    n, g = offsets.shape
    m = torch.zeros(n, g, t, t, dtype=D)
    for i in range(n):
        for j in range(g):
            o = float(offsets[i, j])
            f = int(torch.floor(torch.tensor(o)))
            lam = o - f
            for tt in range(t):
                for src, coef in ((tt - f, 1 - lam), (tt - f - 1, lam)):
                    if boundary == "clamp":
                        src = min(max(src, 0), t - 1)
                    elif not 0 <= src < t:
                        continue
                    m[i, j, tt, src] += coef
    return m


def apply_dense(m: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    n, t, c, h, w = x.shape
    g = m.shape[1]
    xg = x.reshape(n, t, g, -1)
    y = torch.einsum("ngts,nsgl->ntgl", m, xg)
    if weights is not None:
        y = y * weights.unsqueeze(-1)
    return y.reshape(n, t, c, h, w)


def random_case(n=2, t=8, g=4, cg=3, hw=3, spread=None, seed=0, away_from_integers=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, g * cg, hw, hw, generator=gen, dtype=D)
    spread = t if spread is None else spread
    o = (torch.rand(n, g, generator=gen, dtype=D) * 2 - 1) * spread
    if away_from_integers:  # gradcheck needs a neighbourhood without a kink of floor()
        frac = o - torch.floor(o)
        o = torch.floor(o) + frac.clamp(0.05, 0.95)
    w = torch.rand(n, t, g, generator=gen, dtype=D) * 2
    return x, o, w


@pytest.mark.parametrize("boundary", ["zero", "clamp"])
@pytest.mark.parametrize("impl", [interlace, interlace_reference, rtcn])
def test_matches_dense_definition(impl, boundary):
    x, o, w = random_case(spread=10)  # offsets beyond the clip too
    expected = apply_dense(dense_matrices(o, x.shape[1], boundary), x, w)
    torch.testing.assert_close(impl(x, o, w, boundary), expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(impl(x, o, None, boundary), apply_dense(dense_matrices(o, 8, boundary), x, None),
                               rtol=0, atol=1e-13)


def test_initial_tin_offset_averages_neighbour_frames():
    x, _, _ = random_case(g=2)
    y = interlace(x, torch.full((2, 2), 0.5, dtype=D))
    torch.testing.assert_close(y[:, 1:], (x[:, 1:] + x[:, :-1]) / 2)
    torch.testing.assert_close(y[:, 0], x[:, 0] / 2)  # zero fill before the first frame


def test_integer_offsets_reproduce_tsm_folds_exactly():
    """TSM: channels [0, fold) read t+1 (offset -1), [fold, 2 fold) read t-1 (offset +1)."""
    n, t, c = 3, 8, 64
    x = torch.randn(n * t, c, 5, 5, dtype=D)
    fold = c // 8
    tsm = TemporalShift(c, t)(x).view(n, t, c, 5, 5)
    x5 = x.view(n, t, c, 5, 5)
    offsets = torch.tensor([[-1.0, 1.0]], dtype=D).expand(n, 2)
    for impl in (interlace, rtcn):
        y = impl(x5[:, :, :2 * fold], offsets)
        assert torch.equal(y, tsm[:, :, :2 * fold]), impl.__name__


@pytest.mark.parametrize("boundary", ["zero", "clamp"])
def test_gradcheck_x_offsets_weights(boundary):
    x, o, w = random_case(n=2, t=6, g=2, cg=1, hw=2, spread=4, away_from_integers=True)
    for t in (x, o, w):
        t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: interlace(a, b, c, boundary), (x, o, w))


@pytest.mark.parametrize("boundary", ["zero", "clamp"])
def test_gradcheck_without_weights(boundary):
    x, o, _ = random_case(n=1, t=5, g=2, cg=1, hw=2, spread=3, away_from_integers=True)
    x.requires_grad_(), o.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: interlace(a, b, None, boundary), (x, o))


def adjoint_error(op, x, o, w, boundary) -> float:
    """max |grad_x - M^T (w * v)|: the data gradient against the explicit transpose of the forward."""
    x = x.clone().requires_grad_()
    v = torch.randn_like(x)
    (grad,) = torch.autograd.grad(op(x, o, w, boundary), x, v)
    m = dense_matrices(o, x.shape[1], boundary)
    n, t, c = x.shape[:3]
    g = o.shape[1]
    vw = (v.reshape(n, t, g, -1) * w.unsqueeze(-1))
    expected = torch.einsum("ngts,ntgl->nsgl", m, vw).reshape_as(x)
    return (grad - expected).abs().max().item()


class _WrongDirectionBackward(torch.autograd.Function):
    """The bug in mmcv's tin_shift: the data gradient shifted the SAME way."""

    @staticmethod
    def forward(ctx, x, o, w, boundary):
        ctx.save_for_backward(o, w)
        ctx.boundary = boundary
        return interlace(x, o, w, boundary)

    @staticmethod
    def backward(ctx, grad):
        o, w = ctx.saved_tensors
        n, t, c = grad.shape[:3]
        g = o.shape[1]
        gw = (grad.reshape(n, t, g, -1) * w.unsqueeze(-1)).reshape_as(grad)
        return interlace(gw, o, None, ctx.boundary), None, None, None


@pytest.mark.parametrize("boundary", ["zero", "clamp"])
def test_data_gradient_is_the_adjoint(boundary):
    x, o, w = random_case(spread=3, seed=1)
    assert adjoint_error(interlace, x, o, w, boundary) < 1e-13
    assert adjoint_error(interlace_reference, x, o, w, boundary) < 1e-13
    assert adjoint_error(rtcn, x, o, w, boundary) < 1e-13


def test_adjoint_check_catches_a_wrong_direction_backward():
    x, o, w = random_case(spread=3, seed=1)
    wrong = lambda *a: _WrongDirectionBackward.apply(*a)
    assert adjoint_error(wrong, x, o, w, "zero") > 0.1
    # Its forward is right, so only a gradient check can see it.
    torch.testing.assert_close(wrong(x, o, w, "zero"), interlace(x, o, w, "zero"))


def test_backward_keeps_no_shifted_copy_of_the_input():
    """Autograd saves x, the index vectors and the coefficients: nothing else of activation size."""
    x, o, w = random_case(n=2, t=8, g=2, cg=8, hw=8)
    x.requires_grad_(), o.requires_grad_(), w.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        interlace(x, o, w)
    big = [t for t in saved if t.numel() >= x.numel()]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()


def test_custom_op_registration_is_consistent():
    x = torch.randn(2, 6, 5, 7, dtype=D, requires_grad=True)  # 5 rows per frame, 3 interlaced
    src0, src1, a0, a1 = interlace_coefficients(torch.tensor([[1.5, -0.3, 2.2], [0.4, 0.0, -1.7]], dtype=D),
                                                torch.rand(2, 6, 3, dtype=D), 6, "zero")
    a0, a1 = a0.contiguous().requires_grad_(), a1.contiguous().requires_grad_()
    torch.library.opcheck(interlace_frames, (x, src0.contiguous(), src1.contiguous(), a0, a1))


def test_compiles_without_graph_break():
    x, o, w = random_case()
    compiled = torch.compile(lambda a, b, c: interlace(a, b, c), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, o, w), interlace(x, o, w))


@pytest.mark.parametrize("args, match", [
    (dict(x=torch.randn(2, 8, 6, 2, 2), offsets=torch.zeros(2, 4)), "cannot be split into G = 4"),
    (dict(x=torch.randn(2, 8, 8, 2, 2), offsets=torch.zeros(3, 2)), "offsets must have shape"),
    (dict(x=torch.randn(2, 8, 8, 2, 2), offsets=torch.zeros(2, 2), weights=torch.ones(2, 8, 3)),
     "weights must have shape"),
    (dict(x=torch.randn(16, 8, 2, 2), offsets=torch.zeros(2, 2)), r"\(N, T, C, H, W\)"),
    (dict(x=torch.randn(2, 8, 8, 2, 2), offsets=torch.zeros(2, 2), boundary="wrap"), "boundary"),
])
@pytest.mark.parametrize("impl", [interlace, interlace_reference, rtcn])
def test_bad_arguments_are_named(impl, args, match):
    with pytest.raises(ValueError, match=match):
        impl(**args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("boundary", ["zero", "clamp"])
def test_fused_kernel_equals_pytorch_path(dtype, boundary):
    """The C kernel (default on CPU) and the PyTorch path: same output and gradients, also for the TIN
    layout where only the leading rows of each frame are interlaced."""
    from tinlab.ops._kernel import kernels, torch_path
    from tinlab.ops.interlacing import interlace_rows

    if kernels() is None:  # no compiler: the README promises the PyTorch fallback, which other tests cover
        pytest.skip("the fused kernel is not available on this machine")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 6, 50, generator=gen, dtype=dtype)  # 6 rows per frame, 4 interlaced
    o = (torch.rand(3, 4, generator=gen, dtype=dtype) * 2 - 1) * 3
    w = torch.rand(3, 8, 4, generator=gen, dtype=dtype)
    upstream = torch.randn(x.shape, generator=gen, dtype=dtype)
    results = []
    for context in (torch.enable_grad, torch_path):
        with context():
            xs, os_, ws = (v.clone().requires_grad_() for v in (x, o, w))
            y = interlace_rows(xs, os_, ws, boundary)
            results.append((y, *torch.autograd.grad(y, (xs, os_, ws), upstream)))
    tol = dict(rtol=0, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, **tol)
    assert torch.equal(results[0][0][:, :, 4:], x[:, :, 4:])  # copied rows are untouched


def test_kernel_is_used_only_on_what_it_can_read():
    """Non-contiguous indices or coefficients of another dtype take the PyTorch path, same result."""
    from tinlab.ops._kernel import kernels
    from tinlab.ops.interlacing import _cpu_kernels

    if kernels() is None:
        pytest.skip("the fused kernel is not available on this machine")
    x, o, w = random_case()
    src0, src1, a0, a1 = interlace_coefficients(o, w, x.shape[1], "zero", x.dtype)
    rows = x.view(2, 8, 4, -1)
    assert _cpu_kernels(rows, src0.contiguous(), src1.contiguous(), a0.contiguous(), a1.contiguous()) is not None
    strided = src0.transpose(1, 2).contiguous().transpose(1, 2)  # same values, non-contiguous
    assert not strided.is_contiguous()
    assert _cpu_kernels(rows, strided, src1.contiguous(), a0.contiguous(), a1.contiguous()) is None
    assert _cpu_kernels(rows, src0.contiguous(), src1.contiguous(), a0.float().contiguous(),
                        a1.float().contiguous()) is None
    y = interlace_frames(rows, strided, src1.contiguous(), a0.contiguous(), a1.contiguous())  # direct call
    torch.testing.assert_close(y.view_as(x), interlace(x, o, w))
