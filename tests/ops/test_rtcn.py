"""tinlab.ops.rtcn: the hat kernel, and the r-TCN module as TIN with a convolution."""
from __future__ import annotations

import torch

from tinlab.ops import RegularizedTCN, TemporalInterlace, create_temporal_op, rtcn, rtcn_kernel

D = torch.float64


def test_kernel_has_two_taps_with_interpolation_weights():
    k = rtcn_kernel(torch.tensor([[1.25, -0.5, 2.0]], dtype=D), radius=2)  # taps: shifts 2, 1, 0, -1, -2
    torch.testing.assert_close(k[0, 0], torch.tensor([0.25, 0.75, 0, 0, 0], dtype=D))
    torch.testing.assert_close(k[0, 1], torch.tensor([0, 0, 0.5, 0.5, 0], dtype=D))
    torch.testing.assert_close(k[0, 2], torch.tensor([1.0, 0, 0, 0, 0], dtype=D))
    assert ((k > 0).sum(-1) <= 2).all()


def test_small_radius_is_exact_for_offsets_inside_it():
    x = torch.randn(2, 8, 4, 3, 3, dtype=D)
    o = torch.tensor([[1.7, -1.2], [0.3, -1.9]], dtype=D)
    for boundary in ("zero", "clamp"):
        torch.testing.assert_close(rtcn(x, o, None, boundary, radius=2), rtcn(x, o, None, boundary))


def test_module_loads_tin_state_dict_and_matches_it():
    torch.manual_seed(0)
    tin = TemporalInterlace(64, 8, groups=2).double()
    with torch.no_grad():
        tin.offset_net.fc2.bias.uniform_(-3, 3)
    r = create_temporal_op("rtcn", 64, 8).double()
    assert isinstance(r, RegularizedTCN)
    assert list(r.state_dict()) == list(tin.state_dict())
    r.load_state_dict(tin.state_dict())
    x = torch.randn(16, 64, 3, 3, dtype=D)
    torch.testing.assert_close(r(x), tin(x), rtol=0, atol=1e-14)
