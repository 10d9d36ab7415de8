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
