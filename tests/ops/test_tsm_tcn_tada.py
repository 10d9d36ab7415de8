"""tinlab.ops.tsm, tcn and tada, and the op factory."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinlab.ops import TAdaConv2d, TemporalConv, TemporalShift, create_temporal_op, list_temporal_ops

D = torch.float64


def test_tsm_shift_semantics():
    n, t, c = 2, 8, 16
    x = torch.randn(n * t, c, 2, 2)
    y = TemporalShift(c, t)(x).view(n, t, c, 2, 2)
    x5 = x.view(n, t, c, 2, 2)
    assert torch.equal(y[:, :-1, :2], x5[:, 1:, :2]) and (y[:, -1, :2] == 0).all()
    assert torch.equal(y[:, 1:, 2:4], x5[:, :-1, 2:4]) and (y[:, 0, 2:4] == 0).all()
    assert torch.equal(y[:, :, 4:], x5[:, :, 4:])
    assert sum(p.numel() for p in TemporalShift(c, t).parameters()) == 0


def test_tcn_starts_as_identity_and_is_a_depthwise_temporal_conv():
    op = TemporalConv(16, 8).double()
    x = torch.randn(16, 16, 3, 3, dtype=D)
    assert torch.equal(op(x), x)
    with torch.no_grad():
        op.conv.weight.normal_()
    x5 = x.view(2, 8, 16, 3, 3)
    y = op(x).view(2, 8, 16, 3, 3)
    k = op.conv.weight[:, 0]  # (fold, 3): y[t] = k0 x[t-1] + k1 x[t] + k2 x[t+1]
    pad = F.pad(x5[:, :, :4], (0, 0, 0, 0, 0, 0, 1, 1))
    expected = sum(k[:, j].view(1, 1, 4, 1, 1) * pad[:, j:j + 8] for j in range(3))
    torch.testing.assert_close(y[:, :, :4], expected)
    assert torch.equal(y[:, :, 4:], x5[:, :, 4:])


def tada_per_frame_reference(conv: TAdaConv2d, x: torch.Tensor) -> torch.Tensor:
    """Loop over videos and frames: frame (b, t) convolved with W * alpha[b, :, t] (the definition)."""
    b, t = x.shape[0] // conv.num_segments, conv.num_segments
    alpha = conv.route(x.view(b, t, *x.shape[1:]))
    out = []
    for i in range(b):
        for j in range(t):
            w = conv.weight * alpha[i, :, j].view(1, -1, 1, 1)
            out.append(F.conv2d(x[i * t + j:i * t + j + 1], w, stride=conv.stride, padding=conv.padding))
    return torch.cat(out)


def test_tada_identity_calibration_at_init_then_per_frame_kernels():
    torch.manual_seed(0)
    conv = TAdaConv2d(8, 12, num_segments=4, stride=2).double().eval()
    x = torch.randn(2 * 4, 8, 6, 6, dtype=D)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, stride=2, padding=1))  # alpha == 1
    with torch.no_grad():
        conv.route.b.weight.normal_(0, 0.3)
    torch.testing.assert_close(conv(x), tada_per_frame_reference(conv, x))
    # Gradients (input and every parameter, routing included) equal the per-frame-kernel computation's.
    xr = x.detach().clone().requires_grad_()
    g = torch.randn_like(conv(x))
    fast = torch.autograd.grad(conv(xr), [xr, *conv.parameters()], g)
    slow = torch.autograd.grad(tada_per_frame_reference(conv, xr), [xr, *conv.parameters()], g)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b)
    xs = torch.randn(2 * 4, 8, 3, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (xs,))


def test_factory():
    assert list_temporal_ops() == ["tsm", "tin", "rtcn", "tcn", "tada", "tadav2"]  # registration order
    assert isinstance(create_temporal_op("tsm", 64, 8, shift_div=4), TemporalShift)
    assert create_temporal_op("tada", 16, 8)(torch.randn(16, 16, 4, 4)).shape == (16, 16, 4, 4)
    with pytest.raises(ValueError, match="'tsn' has no temporal module"):
        create_temporal_op("tsn", 64, 8)
    with pytest.raises(ValueError, match="unknown model 'i3d'; registered"):
        create_temporal_op("i3d", 64, 8)
    with pytest.raises(TypeError, match="'tsm' does not take option"):
        create_temporal_op("tsm", 64, 8, groups=2)


def test_tsm_backward_is_the_opposite_shift():
    from tinlab.ops.tsm import temporal_shift

    op = TemporalShift(16, 4)
    x = torch.randn(8, 16, 2, 2, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    torch.library.opcheck(temporal_shift, (torch.randn(2, 4, 16, 3, dtype=D, requires_grad=True), 2, 1))
