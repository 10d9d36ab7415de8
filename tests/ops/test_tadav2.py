"""tinlab.ops.tadav2 (TAdaConvV2) against a float64 reference written from the definition, and the v1 routing
normalisation (``route_norm``) that separates a finite evaluation from a divergent one."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import tinlab
from tinlab.ops.tada import TAdaConv2d, temporal_avg_pool
from tinlab.ops.tadav2 import RouteFuncV2, TAdaConv2dV2, tadav2_block

D = torch.float64


def layer_norm_reference(h: torch.Tensor, norm) -> torch.Tensor:
    """(B, D, T): each frame's channels to mean 0 / variance 1 (biased), then the affine map."""
    mean = h.mean(1, keepdim=True)
    var = ((h - mean) ** 2).mean(1, keepdim=True)
    return (h - mean) / torch.sqrt(var + norm.eps) * norm.weight[:, None] + norm.bias[:, None]


def temporal_conv_reference(x: torch.Tensor, conv) -> torch.Tensor:
    """(B, C, T) conv over time, zero padding, written as a sum over taps."""
    k = conv.weight.shape[-1]
    pad = F.pad(x, (k // 2, k // 2))
    out = sum(torch.einsum("oc,bct->bot", conv.weight[:, :, j], pad[:, :, j:j + x.shape[2]]) for j in range(k))
    return out + (conv.bias[None, :, None] if conv.bias is not None else 0)


def route_reference(rf: RouteFuncV2, x5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The routing function from its definition, one attention head at a time with explicit channel sets:
    head h reads channels d * H + h of q, k and v, and writes channels h * head_dim + d."""
    p = x5.mean((3, 4))
    h = temporal_conv_reference(p, rf.a)
    h = layer_norm_reference(h, rf.norm)
    h = h * torch.sigmoid(1.702 * h)
    y = layer_norm_reference(h, rf.norm_transformer)
    qkv = temporal_conv_reference(y, rf.qkv_proj)
    width, heads, hd = h.shape[1], rf.heads, rf.head_dim
    q, k, v = qkv[:, :width], qkv[:, width:2 * width], qkv[:, 2 * width:]
    attended = torch.zeros_like(h)
    for head in range(heads):
        reads = [d * heads + head for d in range(hd)]
        qh, kh, vh = q[:, reads], k[:, reads], v[:, reads]  # (B, hd, T)
        logits = torch.einsum("bdt,bds->bts", qh, kh) / math.sqrt(width)  # scaled by the routing width
        weights = torch.exp(logits - logits.amax(-1, keepdim=True))
        weights = weights / weights.sum(-1, keepdim=True)
        attended[:, head * hd:(head + 1) * hd] = torch.einsum("bts,bds->bdt", weights, vh)
    h = h + temporal_conv_reference(attended, rf.attn_out)
    alpha = temporal_conv_reference(h, rf.b) + 1
    beta = temporal_conv_reference(h, rf.b_bias) + 1 if rf.b_bias is not None else None
    return alpha, beta


def per_frame_reference(conv: TAdaConv2dV2, x: torch.Tensor) -> torch.Tensor:
    """Frame (b, t) convolved with its own kernel alpha * W (over C_in or C_out) plus beta * bias."""
    t = conv.num_segments
    b = x.shape[0] // t
    alpha, beta = route_reference(conv.rf, x.view(b, t, *x.shape[1:]).transpose(1, 2))
    out = []
    for i in range(b):
        for j in range(t):
            scale = alpha[i, :, j]
            w = conv.weight * (scale.view(1, -1, 1, 1) if conv.cal_dim == "cin" else scale.view(-1, 1, 1, 1))
            bias = None if conv.bias is None else beta[i, :, j] * conv.bias
            out.append(F.conv2d(x[i * t + j:i * t + j + 1], w, bias, stride=conv.stride, padding=conv.padding))
    return torch.cat(out)


def randomised(conv: TAdaConv2dV2) -> TAdaConv2dV2:
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_(0, 0.3)
    return conv


@pytest.mark.parametrize("cin,cout,rf_r,head_dim,cal_dim,bias,stride", [
    (8, 12, 2, 64, "cin", False, 2),   # routing width 4 < head_dim: one head of width 4
    (16, 16, 2, 2, "cin", True, 1),    # 4 heads of 2 channels (strided reads, contiguous writes)
    (16, 8, 2, 4, "cout", True, 2),    # 2 heads, output calibration, bias, stride
])
def test_tadav2_equals_per_frame_kernels_forward_and_backward(cin, cout, rf_r, head_dim, cal_dim, bias, stride):
    torch.manual_seed(0)
    conv = randomised(TAdaConv2dV2(cin, cout, 4, stride=stride, rf_r=rf_r, head_dim=head_dim, bias=bias,
                                   cal_dim=cal_dim)).double()
    assert conv.rf.heads == max(cin // rf_r // head_dim, 1)
    x = torch.randn(2 * 4, cin, 6, 5, dtype=D, requires_grad=True)
    out = conv(x)
    torch.testing.assert_close(out, per_frame_reference(conv, x), rtol=1e-12, atol=1e-12)
    g = torch.randn_like(out)
    params = [x, *conv.parameters()]
    for fast, slow in zip(torch.autograd.grad(out, params, g),
                          torch.autograd.grad(per_frame_reference(conv, x), params, g)):
        torch.testing.assert_close(fast, slow, rtol=1e-11, atol=1e-11)
    small = randomised(TAdaConv2dV2(4, 4, 4, rf_r=1, head_dim=2, bias=bias, cal_dim=cal_dim)).double()
    assert torch.autograd.gradcheck(small, (torch.randn(4, 4, 3, 3, dtype=D, requires_grad=True),))


def test_tadav2_starts_as_a_plain_convolution_and_its_block_as_a_plain_resnet_block():
    torch.manual_seed(0)
    conv, norm = tadav2_block(8, 16, 4, stride=2, bias=True)
    conv, norm = conv.double().eval(), norm.double().eval()
    x = torch.randn(8, 8, 6, 6, dtype=D)
    alpha, beta = conv.rf(x.view(2, 4, 8, 6, 6).transpose(1, 2))
    assert torch.equal(alpha, torch.ones_like(alpha)) and torch.equal(beta, torch.ones_like(beta))
    plain = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
    torch.testing.assert_close(conv(x), plain)
    torch.testing.assert_close(norm(conv(x)), F.batch_norm(plain, norm.running_mean, norm.running_var, norm.weight,
                                                           norm.bias, False, 0.0, norm.eps))
    # The official initialisation: base weight truncated normal std 0.02; the calibration convs zero.
    big = TAdaConv2dV2(256, 256, 8)
    w = big.weight.detach()
    assert 0.018 < float(w.std()) < 0.022 and float(w.abs().max()) < 0.2
    assert not big.rf.b.weight.any()


def test_tadav2_options_are_checked_by_their_own_rules():
    with pytest.raises(ValueError, match="cal_dim = 'cmid'"):
        TAdaConv2dV2(8, 8, 4, cal_dim="cmid")
    with pytest.raises(ValueError, match=r"rf_k = \(3, 2\).*odd"):
        TAdaConv2dV2(8, 8, 4, rf_k=(3, 2))
    with pytest.raises(ValueError, match="routing width 24 .* not a multiple of head_dim 16"):
        RouteFuncV2(96, rf_r=4, head_dim=16)
    with pytest.raises(TypeError, match="does not take option"):
        tinlab.create_model("tadav2", backbone="resnet18", groups=2)


def test_the_temporal_pool_equals_the_official_avg_pool3d():
    x = torch.randn(3 * 8, 5, 4, 3, dtype=D, requires_grad=True)
    x5 = x.view(3, 8, 5, 4, 3).transpose(1, 2)
    official = F.avg_pool3d(x5, (3, 1, 1), 1, (1, 0, 0)).transpose(1, 2).reshape(24, 5, 4, 3)
    torch.testing.assert_close(temporal_avg_pool(x, 8), official, rtol=1e-14, atol=1e-14)
    assert torch.autograd.gradcheck(lambda v: temporal_avg_pool(v, 8), (x,))
    traced = torch.jit.trace(lambda v: temporal_avg_pool(v, 8), (x.detach(),))  # the avg_pool3d form
    assert "avg_pool3d" in str(traced.graph)
    torch.testing.assert_close(traced(x.detach()), official.detach(), rtol=1e-14, atol=1e-14)


def _plant(model: torch.nn.Module) -> None:
    """A routing that amplifies: the calibration conv b all ones, and each routing norm's output scale
    3; BatchNorms (routing ones included) with their initial running statistics (mean 0, var 1)."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.endswith("route.b"):
                m.weight.fill_(1.0)
            if name.endswith(("route.bn", "route.norm")):
                m.weight.fill_(3.0)


def test_route_norm_layernorm_evaluates_finitely_where_the_official_batchnorm_diverges():
    """The mechanism of TAda2D's divergence in eval mode: with a BatchNorm (a fixed affine map in eval) in
    the routing, alpha grows linearly with the scale of the block's input and the block's output with its
    square, so an amplification compounds block after block; a per-frame LayerNorm removes the input's
    scale from alpha. Same weights, same clips; only ``route_norm`` differs."""
    outs = {}
    for norm in ("batchnorm", "layernorm"):
        torch.manual_seed(0)
        model = tinlab.create_model("tada", backbone="resnet18", num_classes=5, num_segments=4, width_mult=0.25,
                                    route_norm=norm)
        _plant(model)
        torch.manual_seed(1)
        outs[norm] = model.eval()(torch.randn(2, 4, 3, 32, 32))
    assert not torch.isfinite(outs["batchnorm"]).all()
    assert torch.isfinite(outs["layernorm"]).all()
    # One convolution: scaling its input by s scales the output by ~s^2 with the BatchNorm routing, by s with
    # the LayerNorm routing (alpha is invariant to the input's scale).
    for norm, power in (("batchnorm", 2.0), ("layernorm", 1.0)):
        torch.manual_seed(0)
        conv = TAdaConv2d(8, 8, 4, route_norm=norm).double().eval()
        with torch.no_grad():
            conv.route.b.weight.fill_(0.5)
        x = torch.rand(8, 8, 5, 5, dtype=D) + 0.5
        with torch.no_grad():
            ratio = float(conv(1e6 * x).abs().sum() / conv(1e3 * x).abs().sum())  # the scale grows 1000-fold
        assert abs(math.log(ratio, 1e3) - power) < 0.05, (norm, math.log(ratio, 1e3))
