"""tinlab/ops/triton_kernels.py: the CUDA kernels of TIN's interlacing, run here on CPU tensors by
Triton's interpreter (TRITON_INTERPRET=1), against the C kernel and the PyTorch path. Inputs sit inside
NaN-filled buffers, so a read out of bounds shows as a NaN in the result."""
from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1":  # tests/conftest.py sets it on machines without CUDA
    pytest.skip("the interpreter tests need TRITON_INTERPRET=1 before Triton is imported",
                allow_module_level=True)

from tinlab.ops import triton_kernels as tk  # noqa: E402
from tinlab.ops._kernel import kernels, torch_path  # noqa: E402
from tinlab.ops.interlacing import (_forward, _interlace_frames_backward_torch,  # noqa: E402
                                    _interlace_frames_torch, interlace_coefficients, interlace_frames,
                                    tin_coefficients, tin_interlace)


def guarded(shape, dtype=torch.float32, values=None, gen=None):
    """A dense tensor of ``shape`` in the middle of a NaN buffer (values random unless given)."""
    numel = 1
    for d in shape:
        numel *= d
    fill = float("nan") if dtype.is_floating_point else -(2 ** 40)  # indices: a frame far outside any clip
    buf = torch.full((numel + 64,), fill, dtype=dtype)
    inner = buf[32:32 + numel].view(shape)
    inner.copy_(values if values is not None else torch.randn(shape, generator=gen).to(dtype))
    return inner


def case(n, t, r, g, cg, l, boundary, weights, integer, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = guarded((n, t, r, cg, l), dtype, gen=gen)
    o = (torch.rand(n, g, generator=gen) * 2 - 1) * 2.5
    o = o.round() if integer else o
    w = torch.rand(n, t, g, generator=gen) * 2 if weights else None
    coef = [v.contiguous() for v in interlace_coefficients(o, w, t, boundary, dtype)]
    s0, s1 = (guarded(v.shape, torch.long, v) for v in coef[:2])
    a0, a1 = (guarded(v.shape, dtype, v) for v in coef[2:])
    return x, s0, s1, a0, a1


SHAPES = [(2, 3, 5, 3, 2, 7), (1, 1, 2, 2, 3, 5), (2, 16, 4, 4, 2, 50), (3, 8, 6, 4, 1, 9)]  # N T R G Cg L


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}R{}G{}Cg{}L{}".format(*s))
@pytest.mark.parametrize("boundary", ["zero", "clamp"])
@pytest.mark.parametrize("weights, integer", [(True, False), (False, True)], ids=["weights-fractional",
                                                                                    "no-weights-integer"])
def test_forward_and_backward_match_the_c_kernel_and_the_pytorch_path(shape, boundary, weights, integer):
    x, s0, s1, a0, a1 = case(*shape, boundary, weights, integer)
    y = tk.interlace_forward(x, s0, s1, a0, a1)
    assert not y.isnan().any()
    references = [_interlace_frames_torch(x, s0, s1, a0, a1)]
    if kernels() is not None:
        references.append(_forward(x, s0, s1, a0, a1))  # the C kernel (CPU path)
    for ref in references:
        torch.testing.assert_close(y, ref, rtol=0, atol=2e-6)
    grad = guarded(x.shape)
    got = tk.interlace_backward(x, s0, s1, a0, a1, grad, True, True, True)
    want = _interlace_frames_backward_torch(x, s0, s1, a0, a1, grad, True, True, True)
    for a, b in zip(got, want):
        assert not a.isnan().any()
        # sums over up to T*Cg*L products in another order (the C kernel splits them over threads)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bfloat16_within_two_ulp_of_fp32_arithmetic():
    x, s0, s1, a0, a1 = case(2, 8, 4, 2, 3, 33, "zero", True, False, dtype=torch.bfloat16)
    y = tk.interlace_forward(x, s0, s1, a0, a1)
    exact = _interlace_frames_torch(x.float(), s0, s1, a0.float(), a1.float())  # fp32 arithmetic on the same inputs
    ulp = torch.finfo(torch.bfloat16).eps * exact.abs().clamp_min(torch.finfo(torch.bfloat16).tiny)
    assert y.dtype == torch.bfloat16 and ((y.float() - exact).abs() <= 2 * ulp + 1e-30).all()
    gx = tk.interlace_backward(x, s0, s1, a0, a1, torch.ones_like(x), True, False, False)[0]
    assert gx.dtype == torch.bfloat16 and not gx.isnan().any()


def test_channels_last_in_is_channels_last_out_without_a_copy():
    x4 = torch.randn(2 * 4, 12, 5, 3).to(memory_format=torch.channels_last)
    rows = x4.view(2, 4, 4, 3, 15)  # TIN's view of a channels_last activation: strided, no copy
    _, s0, s1, a0, a1 = case(2, 4, 4, 2, 3, 15, "zero", True, False)
    y = tk.interlace_forward(rows, s0, s1, a0, a1)
    assert y.stride() == rows.stride() and y.view_as(x4).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, _interlace_frames_torch(rows.contiguous(), s0, s1, a0, a1), rtol=0, atol=2e-6)
    gx = tk.interlace_backward(rows, s0, s1, a0, a1, torch.randn_like(rows), True, False, False)[0]
    assert gx.stride() == rows.stride()


@pytest.mark.parametrize("reverse, attention, boundary", [(True, True, "zero"), (False, False, "clamp"),
                                                          (True, False, "clamp")])
def test_the_fused_tin_kernel_computes_the_coefficients_as_pytorch_does(reverse, attention, boundary):
    gen = torch.Generator().manual_seed(1)
    g = 2
    x = guarded((2, 8, 6, 3, 10), gen=gen)
    z = torch.randn(2, g, generator=gen) * 2
    v = torch.randn(2, g, 8, generator=gen) if attention else None
    y = tk.tin_forward(x, z, v, 2.0, reverse, boundary)
    ref = _interlace_frames_torch(x, *tin_coefficients(z, v, 8, 2.0, reverse, boundary, x.dtype))
    assert not y.isnan().any()
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)  # Triton's sigmoid vs PyTorch's: an ulp apart


def test_opcheck_of_the_ops():
    """torch.library.opcheck: schema, fake (meta) implementation, autograd registration, AOT dispatch."""
    x, s0, s1, a0, a1 = case(2, 4, 3, 2, 2, 5, "zero", True, False)
    a0.requires_grad_(True)
    torch.library.opcheck(interlace_frames, (x.clone().requires_grad_(), s0, s1, a0, a1.clone().requires_grad_()))
    rows = torch.randn(2, 4, 6, 2, 5, requires_grad=True)
    z, v = torch.randn(2, 2, requires_grad=True), torch.randn(2, 2, 4, requires_grad=True)
    torch.library.opcheck(tin_interlace, (rows, z, v, 2.0, True, "zero"))
    with torch_path():
        torch.library.opcheck(tin_interlace, (rows, z, None, 2.0, False, "clamp"))


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_tsm_shift_kernel_matches_the_pytorch_shift(channels_last):
    from tinlab.ops.tsm import temporal_shift

    x4 = torch.randn(3 * 5, 16, 3, 7)
    if channels_last:
        x4 = x4.to(memory_format=torch.channels_last)
    x = x4.view(3, 5, 16, 3, 7)
    for direction in (1, -1):
        y = tk.shift_forward(x, 2, direction)
        assert y.stride() == x.stride()
        assert torch.equal(y, temporal_shift(x.contiguous(), 2, direction))


def _reference_tin(x, z, v, offset_range, reverse, boundary):
    """TIN's aggregation by plain autograd ops (the naive gather of interlace_reference), float64 oracle."""
    from tinlab.ops.interlacing import interlace_reference

    n, t, r = x.shape[:3]
    offsets = 2 * offset_range * (torch.sigmoid(z) - 0.5)
    weights = 2 * torch.sigmoid(v).transpose(1, 2) if v is not None else None
    if reverse:
        offsets = torch.cat([offsets, -offsets], 1)
        weights = torch.cat([weights, weights], 2) if weights is not None else None
    gi = offsets.shape[1]
    lead = x[:, :, :gi].reshape(n, t, -1, 1, 1)
    y = interlace_reference(lead, offsets, weights, boundary).view_as(x[:, :, :gi])
    return torch.cat([y, x[:, :, gi:]], 2)


@pytest.mark.parametrize("reverse, attention, boundary, frames", [
    (True, True, "zero", 8), (False, False, "clamp", 8), (True, False, "clamp", 5), (True, True, "clamp", 3),
    (False, True, "zero", 1), (True, True, "zero", 16)])
@pytest.mark.parametrize("chunk", [None, 7], ids=["one-program-per-row", "rows-split-in-5"])
def test_the_fused_tin_backward_matches_autograd_of_the_reference(reverse, attention, boundary, frames, chunk,
                                                                  monkeypatch):
    """tinlab::tin_interlace_backward's CUDA kernels (the O(T) gather for x, the coefficient gradients chained
    into z and v in the kernel, each row's reduction split over programs when long) against float64 autograd
    through the naive reference; offsets kept away from integers (the floor's kinks)."""
    if chunk:
        monkeypatch.setattr(tk, "REDUCE_CHUNK", chunk)  # 30 elements per row: 5 programs each
    gen = torch.Generator().manual_seed(frames)
    g, x = 2, guarded((2, frames, 6, 3, 10), gen=gen)
    z = torch.tensor([[0.3, -1.2], [2.1, -0.4]])  # offsets 0.30, -1.07, 1.56, -0.39 frames at r = 2
    v = torch.randn(2, g, frames, generator=gen) if attention else None
    gy = guarded(x.shape, gen=gen)
    got = tk.tin_backward(x, z, v, gy, 2.0, reverse, boundary, True, True, attention)
    x64, z64 = x.double().requires_grad_(), z.double().requires_grad_()
    v64 = v.double().requires_grad_() if attention else None
    y = _reference_tin(x64, z64, v64, 2.0, reverse, boundary)
    want = torch.autograd.grad(y, [x64, z64] + ([v64] if attention else []), gy.double())
    for a, b in zip(got, want):
        assert not a.isnan().any()
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from tinlab.ops._triton_interlace import tin_offset  # noqa: E402


@triton.jit
def _floors(z_ptr, out_ptr, N, scale, BLOCK: tl.constexpr):
    """The floor tin_offset gives each of N values of z (one group per 'video'), BLOCK values a program."""
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    f, _, _ = tin_offset(z_ptr, tl.minimum(n, N - 1), 0, 1, scale, False)
    tl.store(out_ptr + n, f, mask=n < N)


def _every_bf16_between(lo, hi):
    bits = torch.arange(0, 2 ** 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    return bits[torch.isfinite(bits) & (bits > lo) & (bits < hi)]


def test_bf16_offsets_are_floored_once_in_fp32_for_forward_and_backward():
    """Under bf16 autocast z arrives in bf16. The forward kernel floors each offset in fp32; a backward that
    recomputed it in bf16 floored ~1,900 of the 33,152 bf16 values in (-6, 6) differently and differentiated
    another pair of frames. Now both kernels take the floor from one helper, ``tin_offset`` (fp32): checked
    here for every one of those values, and end to end on the values where bf16 and fp32 disagree."""
    import inspect

    from tinlab.ops import _triton_interlace as k

    for kernel in (k.coefficients, k.tin_backward_x, k.tin_backward_coefficients):
        source = inspect.getsource(kernel.fn)
        assert "tin_offset(" in source and "floor" not in source.split('"""')[-1], kernel.fn.__name__
    assert "coefficients(" in inspect.getsource(k.forward.fn)

    z = _every_bf16_between(-6, 6)
    assert len(z) == 33152
    o32 = 2 * 2.0 * (torch.sigmoid(z.float()) - 0.5)
    o16 = (2 * 2.0 * (torch.sigmoid(z) - 0.5)).float()
    risky = torch.floor(o32) != torch.floor(o16)
    assert 1500 < int(risky.sum()) < 2500  # the defect's size: bf16 rounding lands these on an integer
    got = torch.empty(len(z), dtype=torch.int32)
    _floors[(-(-len(z) // 1024),)](z, got, len(z), 4.0, BLOCK=1024)
    # every value: the fp32 floor, never the bf16 one. Within a few fp32 ulps of an integer two fp32 sigmoids
    # (PyTorch's, the kernel's) may round apart: most bf16 values are tiny (|z| < 1e-7, o within 4e-7 of 0)
    # and there only the kernel's own floor counts, which is the one both passes use.
    near = (o32 - o32.round()).abs() < 4e-7
    assert int((~near).sum()) > 5000 and torch.equal(got[~near], torch.floor(o32[~near]).int())
    risky &= ~near

    # end to end on 96 of the values where the floors disagree: gz of the bf16 backward is the derivative
    # of the fp32-floored function (float64 oracle); bf16 coefficients would differentiate another pair
    zz = z[risky][torch.linspace(0, int(risky.sum()) - 1, 96).long()].view(-1, 1)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(len(zz), 3, 1, 1, 4, generator=gen).to(torch.bfloat16)
    gy = torch.randn(len(zz), 3, 1, 1, 4, generator=gen).to(torch.bfloat16)
    _, gz, _ = tk.tin_backward(x, zz, None, gy, 2.0, False, "zero", False, True, False)
    f = torch.floor(o32[risky][torch.linspace(0, int(risky.sum()) - 1, 96).long()]).double().view(-1, 1)
    z64 = zz.double().requires_grad_()
    o = 4.0 * (torch.sigmoid(z64) - 0.5)
    lam = o - f  # the fp32 floor, held fixed (its derivative is zero)
    xs, t = x.double().view(len(zz), 3, 4), torch.arange(3).view(1, 3, 1)
    src0 = t - f.long().view(-1, 1, 1)

    def tap(src):
        valid = ((src >= 0) & (src < 3)).double()
        return torch.gather(xs, 1, src.clamp(0, 2).expand(-1, -1, 4)) * valid

    y = (1 - lam).view(-1, 1, 1) * tap(src0) + lam.view(-1, 1, 1) * tap(src0 - 1)
    want = torch.autograd.grad(y, z64, gy.double().view(len(zz), 3, 4), retain_graph=True)[0]
    assert gz.dtype == torch.bfloat16  # the gradient of a bf16 z is bf16: one rounding (2^-8) of the fp32 value
    torch.testing.assert_close(gz.double(), want, rtol=2 ** -7, atol=1e-5)
    f16 = torch.floor(o16[risky][torch.linspace(0, int(risky.sum()) - 1, 96).long()]).double().view(-1, 1)
    src16 = t - f16.long().view(-1, 1, 1)
    y16 = (1 - (o - f16)).view(-1, 1, 1) * tap(src16) + (o - f16).view(-1, 1, 1) * tap(src16 - 1)
    wrong = torch.autograd.grad(y16, z64, gy.double().view(len(zz), 3, 4))[0]
    assert ((wrong - want).abs() > 0.05 * want.abs()).float().mean() > 0.5  # the test tells the floors apart


@pytest.mark.parametrize("stride_log2", [29, 30])
def test_indices_are_64_bit(tmp_path, stride_log2):
    """Three videos at a video stride of 2^30 elements (e.g. ~335 clips of 8 frames in ResNet-50's layer 1):
    the third starts at element 2^31, past int32. Every index times stride is computed in int64 (with an
    int32 program id the third video wraps: planted, this test fails). The clip lives in a sparse file, so
    12 GiB of address space cost a few pages."""
    stride, videos = 2 ** stride_log2, 3
    t, r, cg, l = 3, 4, 2, 5
    numel = (videos - 1) * stride + t * r * cg * l
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(numel * 4)
    storage = torch.from_file(str(path), shared=True, size=numel, dtype=torch.float32)
    dense = torch.randn(videos, t, r, cg, l)
    x = torch.empty(0).set_(storage, 0, (videos, t, r, cg, l), (stride, r * cg * l, cg * l, l, 1))
    x.copy_(dense)
    z = torch.tensor([[0.7, -0.4], [1.3, 0.2], [-0.9, 1.1]])
    y = tk.tin_forward(x, z, None, 2.0, True, "zero")
    assert torch.equal(y, tk.tin_forward(dense, z, None, 2.0, True, "zero"))
    s = tk.shift_forward(x.view(videos, t, r * cg, l), 1, 1)
    assert torch.equal(s, tk.shift_forward(dense.view(videos, t, r * cg, l), 1, 1))
    gy = torch.randn(videos, t, r, cg, l)
    got = tk.tin_backward(x, z, None, gy, 2.0, True, "zero", True, True, False)
    want = tk.tin_backward(dense, z, None, gy, 2.0, True, "zero", True, True, False)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_every_launch_is_on_the_tensors_device_with_a_one_dimensional_grid():
    """Triton launches on the current CUDA device: each launch sits in ``with _on(x)`` (x's device made
    current). Each grid is one axis (2^31 - 1 programs; a second axis holds only 65,535 blocks, which a row
    of C*H*W > 16.7M elements would exceed). Checked on the source: no GPU here."""
    import ast
    import inspect
    from types import SimpleNamespace

    tree = ast.parse(inspect.getsource(tk))
    launches = 0
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        guarded_nodes = set()
        for w in (n for n in ast.walk(func) if isinstance(n, ast.With)):
            if any(isinstance(i.context_expr, ast.Call) and getattr(i.context_expr.func, "id", "") == "_on"
                   for i in w.items):
                guarded_nodes |= {id(n) for n in ast.walk(w)}
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)):
            launches += 1
            assert id(call) in guarded_nodes, f"{func.name}: a launch outside `with _on(...)`"
            grid = call.func.slice
            assert isinstance(grid, ast.Tuple) and len(grid.elts) == 1, f"{func.name}: grid {ast.unparse(grid)}"
    # forward, backward_x, backward_coefficients, shift, tin_backward_x, tin_backward_coefficients, tin_descriptor,
    # tin_nets_forward, tin_nets_backward
    assert launches == 9
    guard = tk._on(SimpleNamespace(device=torch.device("cuda", 1)))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1


def test_direct_calls_with_frames_outside_the_clip_are_refused():
    x, s0, s1, a0, a1 = case(1, 4, 2, 2, 1, 3, "zero", True, False)
    bad = s0.clone()
    bad[0, 1, 0] = 4
    with pytest.raises(IndexError, match=r"outside \[0, 4\)"):
        tk.interlace_forward(x, bad, s1, a0, a1)


@pytest.mark.parametrize("reverse, attention, boundary", [(True, True, "zero"), (False, False, "clamp"),
                                                          (True, False, "clamp")])
def test_the_backward_op_off_cuda_matches_the_reference_in_float64(reverse, attention, boundary):
    """tinlab::tin_interlace_backward on the CPU (the chain rule written out) against autograd of the naive
    reference, in float64; and the CPU training path (autograd of the coefficient graph) against both."""
    from tinlab.ops.interlacing import tin_interlace_backward

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 6, 3, 10, generator=gen, dtype=torch.float64)
    z = torch.tensor([[0.3, -1.2], [2.1, -0.4]], dtype=torch.float64)
    v = torch.randn(2, 2, 8, generator=gen, dtype=torch.float64) if attention else None
    gy = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    leaves = [x.clone().requires_grad_(), z.clone().requires_grad_()] + ([v.clone().requires_grad_()] if attention else [])
    want = torch.autograd.grad(_reference_tin(*leaves[:2], leaves[2] if attention else None, 2.0, reverse, boundary),
                               leaves, gy)
    got = tin_interlace_backward(x, z, v, gy, 2.0, reverse, boundary, True, True, attention)
    trained = torch.autograd.grad(tin_interlace(*leaves[:2], leaves[2] if attention else None, 2.0, reverse, boundary),
                                  leaves, gy)
    for a, b, c in zip(got, want, trained):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c, b, rtol=1e-12, atol=1e-12)


# --- tinlab::tin_nets on CUDA: the descriptor kernel and the nets' forward and backward kernels ---------

NETS = [(2, 8, 32, 5, 2, True, True), (3, 5, 16, 7, 1, False, True), (1, 16, 64, 3, 4, True, False),
        (2, 1, 8, 2, 1, True, True), (1, 32, 128, 2, 2, True, True)]  # N T C HW G reverse attention


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case_", NETS, ids=lambda c: "N{}T{}C{}HW{}G{}rev{}att{}".format(*c))
def test_the_nets_kernels_match_float64_autograd_of_the_modules(case_, dtype, channels_last):
    """The kernels read the rows, the parameters and the gradients from inside NaN-filled buffers (an
    out-of-bounds read shows as a NaN); references are the modules in float64 with autograd. bf16 rows
    (the GPU's training dtype) enter the descriptor once rounded, so the reference sees the same rounded x."""
    from tinlab.ops.tin import TemporalInterlace

    n, t, c, hw, g, reverse, attention = case_
    gen = torch.Generator().manual_seed(t * c)
    op = TemporalInterlace(c, t, groups=g, reverse=reverse, attention=attention).double()
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    x = torch.randn(n * t, c, hw, hw, generator=gen).to(dtype).double().requires_grad_()
    params = [p for p in op._net_parameters() if p is not None]
    z, v = op._nets(op._rows(x))
    gz = torch.randn(z.shape, generator=gen, dtype=torch.float64)
    gv = torch.randn(v.shape, generator=gen, dtype=torch.float64) if attention else None
    want = torch.autograd.grad((z * gz).sum() + ((v * gv).sum() if attention else 0), [x, *params])

    xk = guarded(x.shape, dtype, x.detach().to(dtype))
    rows = op._rows(xk.to(memory_format=torch.channels_last) if channels_last else xk)
    pk = [guarded(p.shape, torch.float32, p.detach().float()) if p is not None else None for p in op._net_parameters()]
    fz, fv, d = tk.tin_nets_forward(rows, op.num_channel_groups, pk, torch.float32)
    small, grads = tk.tin_nets_backward(tuple(rows.shape), d, pk, guarded(gz.shape, torch.float32, gz.float()),
                                        guarded(gv.shape, torch.float32, gv.float()) if attention else None, dtype)
    assert small.dtype == dtype and small.shape == (*rows.shape[:4], 1)
    got = [small.expand(rows.shape).reshape(x.shape)] + [q for q in grads if q is not None]
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2 ** -7, atol=2 ** -7 * 0.05)
    torch.testing.assert_close(fz.double(), z, rtol=1e-5, atol=1e-5)
    if attention:
        torch.testing.assert_close(fv.double(), v, rtol=1e-5, atol=1e-5)
    for name, a, b in zip(["x"] + [f"param {i}" for i in range(len(params))], got, want):
        assert not a.isnan().any(), name
        torch.testing.assert_close(a.double(), b, msg=lambda m: f"{name}: {m}", **(tol if name == "x" else
                                                                                 dict(rtol=1e-5, atol=1e-5)))


def test_the_three_layouts_of_a_row_give_the_same_result():
    """LAYOUT 0 (dense rows: plain offsets, vector accesses), 1 (channels outer, strided) and 2 (channels
    inner) are three ways of walking the same elements: equal outputs and gradients on the same values."""
    gen = torch.Generator().manual_seed(5)
    dense = torch.randn(2, 4, 5, 2, 12, generator=gen)  # 5 rows: 4 interlaced (2 groups and their reverse)
    strided = torch.randn(2, 4, 5, 2, 13, generator=gen)[..., :12].copy_(dense)  # rows not dense
    inner = dense.permute(0, 1, 2, 4, 3).contiguous().permute(0, 1, 2, 4, 3)  # channels innermost
    assert [tk._layout_code(v) for v in (dense, strided, inner)] == [0, 1, 2]
    z, v = torch.tensor([[0.4, -1.3], [1.7, -0.2]]), torch.randn(2, 2, 4, generator=gen)
    gy = torch.randn(dense.shape, generator=gen)
    results = [(tk.tin_forward(x, z, v, 2.0, True, "zero"),
                *tk.tin_backward(x, z, v, torch.empty_like(x).copy_(gy), 2.0, True, "zero", True, True, True))
               for x in (dense, strided, inner)]
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_fewer_rows_than_interlaced_groups_are_refused():
    """Two groups with reverse offsets interlace 4 rows: a clip of 3 rows would be read past its end."""
    x, z = torch.randn(2, 4, 3, 2, 12), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="4 interlaced rows .* 3"):
        tk.tin_forward(x, z, None, 2.0, True, "zero")
    with pytest.raises(ValueError, match="4 interlaced rows .* 3"):
        tk.tin_backward(x, z, None, x, 2.0, True, "zero", True, True, False)


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("t, channels, groups, reverse, attention, boundary", [
    (8, 32, 2, True, True, "zero"), (5, 16, 1, False, True, "clamp"), (4, 32, 2, True, False, "zero")])
def test_the_whole_tin_block_backward_matches_float64_autograd_of_the_module(t, channels, groups, reverse, attention,
                                                                             boundary, channels_last):
    """tinlab::tin_block's CUDA backward (coefficient kernel, nets' kernel, then the data kernel adding the
    descriptor's gradient in its one pass) against float64 autograd of the module's own layers: dL/dx and
    every parameter gradient. Offsets away from integers (z fixed through fc2's bias, fc2's weight small)."""
    from tinlab.ops.tin import TemporalInterlace

    gen = torch.Generator().manual_seed(t)
    op = TemporalInterlace(channels, t, groups=groups, reverse=reverse, boundary=boundary,
                           attention=attention).double()
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
        op.offset_net.fc2.weight.mul_(0.01)
        op.offset_net.fc2.bias.copy_(torch.tensor([0.3, -1.2][:groups] + [0.7] * (groups - 2)))
    x = torch.randn(2 * t, channels, 3, 3, generator=gen, dtype=torch.float64).requires_grad_()
    gy = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    params = [p for p in op._net_parameters() if p is not None]
    y = op.aggregate(op._rows(x), *op._nets(op._rows(x))).view_as(x)  # the modules and the interlacing
    want = torch.autograd.grad(y, [x, *params], gy)

    x32 = x.detach().float()
    x32 = x32.to(memory_format=torch.channels_last) if channels_last else guarded(x32.shape, values=x32)
    g32 = torch.empty_like(x32).copy_(gy)
    op32 = TemporalInterlace(channels, t, groups=groups, reverse=reverse, boundary=boundary, attention=attention)
    op32.load_state_dict(op.state_dict())
    rows, p32 = op32._rows(x32), op32._net_parameters()
    z, v, d = tk.tin_nets_forward(rows, op32.num_channel_groups, p32, torch.float32)
    grad_rows, grads = tk.tin_block_backward(rows, op32._rows(g32), z, v if attention else None, d, p32, op32.offset_range,
                                             reverse, boundary)
    got = [grad_rows.reshape(x.shape)] + [q for q in grads if q is not None]
    for name, a, b in zip(["x"] + [f"param {i}" for i in range(len(params))], got, want):
        assert not a.isnan().any(), name
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
