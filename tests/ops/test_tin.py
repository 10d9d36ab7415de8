"""tinlab.ops.tin: the official TIN module, its initialisation, ablation options and errors."""
from __future__ import annotations

import math

import pytest
import torch

from tinlab.ops import TemporalInterlace, create_temporal_op, interlace

D = torch.float64


def test_official_defaults_and_parameter_count():
    c, t = 256, 8
    op = create_temporal_op("tin", c, t)
    assert (op.shift_div, op.groups, op.reverse, op.boundary, op.offset_range, op.attention) == \
        (4, 2, True, "zero", 2.0, True)
    fold = c // 4
    # The official code: with G = 2, TIN adds exactly 9*fold + T*T + 3*T + 5 parameters per block.
    assert sum(p.numel() for p in op.parameters()) == 9 * fold + t * t + 3 * t + 5
    assert op.offset_net.fc2.bias.detach().tolist() == pytest.approx([0.5108] * 2, abs=1e-4)
    assert op.weight_net.conv.bias.abs().max() == 0


def test_initial_offsets_and_weights():
    op = TemporalInterlace(64, 8).double()
    with torch.no_grad():  # isolate the bias: offsets exactly +0.5, weights exactly 1
        op.offset_net.fc2.weight.zero_()
        op.weight_net.conv.weight.zero_()
    x = torch.randn(2 * 8, 64, 4, 4, dtype=D)
    offsets, weights = op.offsets_and_weights(x)
    torch.testing.assert_close(offsets, torch.tensor([[0.5, 0.5, -0.5, -0.5]] * 2, dtype=D))
    torch.testing.assert_close(weights, torch.ones(2, 8, 4, dtype=D))


def official_forward(op: TemporalInterlace, x: torch.Tensor) -> torch.Tensor:
    """TIN's forward written out step by step from its definition (independent of TemporalInterlace)."""
    n = x.shape[0] // op.num_segments
    t, c, fold = op.num_segments, op.channels, op.fold
    x5 = x.view(n, t, c, *x.shape[2:])
    desc = x5[:, :, :fold].mean((3, 4)).permute(0, 2, 1)
    z = op.offset_net.fc2(torch.relu(op.offset_net.fc1(op.offset_net.conv(desc).view(n, t))))
    o = 4 * (torch.sigmoid(z) - 0.5)
    w = 2 * torch.sigmoid(op.weight_net.conv(desc)).permute(0, 2, 1)
    o, w = torch.cat([o, -o], 1), torch.cat([w, w], 2)
    out = x5.clone()
    gsize = fold // 4
    for g in range(4):
        part = x5[:, :, g * gsize:(g + 1) * gsize]
        for i in range(n):
            f = int(torch.floor(o[i, g]))
            lam = o[i, g] - f
            for tt in range(t):
                acc = torch.zeros_like(part[i, 0])
                for src, coef in ((tt - f, 1 - lam), (tt - f - 1, lam)):
                    if 0 <= src < t:
                        acc = acc + coef * part[i, src]
                out[i, tt, g * gsize:(g + 1) * gsize] = w[i, tt, g] * acc
    return out.view_as(x)


def test_forward_matches_step_by_step_official_semantics():
    torch.manual_seed(0)
    op = TemporalInterlace(32, 8).double()
    with torch.no_grad():
        op.offset_net.fc2.bias.uniform_(-3, 3)
    x = torch.randn(3 * 8, 32, 3, 3, dtype=D)
    torch.testing.assert_close(op(x), official_forward(op, x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("groups, reverse", [(1, True), (2, False), (4, True), (4, False)])
def test_ablation_groups_and_reverse(groups, reverse):
    op = TemporalInterlace(64, 8, groups=groups, reverse=reverse)
    x = torch.randn(16, 64, 3, 3)
    offsets, weights = op.offsets_and_weights(x)
    total = groups * (2 if reverse else 1)
    assert offsets.shape == (2, total) and weights.shape == (2, 8, total)
    if reverse:
        torch.testing.assert_close(offsets[:, groups:], -offsets[:, :groups])
        torch.testing.assert_close(weights[:, :, groups:], weights[:, :, :groups])
    assert op(x).shape == x.shape
    assert op.offset_net.fc2.out_features == groups and op.weight_net.conv.out_channels == groups


def test_untouched_channels_and_attention_off_and_clamp():
    x = torch.randn(16, 64, 3, 3, dtype=D)
    op = TemporalInterlace(64, 8, attention=False, boundary="clamp").double()
    assert op.weight_net is None
    y = op(x)
    assert torch.equal(y[:, 16:], x[:, 16:])  # 3/4 of the channels pass unchanged
    offsets, weights = op.offsets_and_weights(x)
    assert weights is None
    expected = interlace(x.view(2, 8, 64, 3, 3)[:, :, :16], offsets, None, "clamp")
    torch.testing.assert_close(y.view(2, 8, 64, 3, 3)[:, :, :16], expected)


def test_offset_range_bounds_offsets():
    op = TemporalInterlace(32, 8, offset_range=3.0)
    with torch.no_grad():
        op.offset_net.fc2.bias.fill_(50.0)
    offsets, _ = op.offsets_and_weights(torch.randn(16, 32, 2, 2))
    assert offsets[:, :2].max() <= 3.0 and offsets[:, :2].min() > 2.9
    with torch.no_grad():
        op.offset_net.fc2.weight.zero_()
        op.offset_net.fc2.bias.copy_(torch.tensor([math.log(0.5 + 0.25 / 3) - math.log(0.5 - 0.25 / 3)] * 2))
    offsets, _ = op.offsets_and_weights(torch.randn(16, 32, 2, 2))
    torch.testing.assert_close(offsets[:, :2], torch.full((2, 2), 0.5))  # same +0.5 start for any range


def test_offsets_and_weights_are_readable_through_forward_hooks():
    """Analysis reads offset_net / weight_net outputs with hooks; they are the op's own offsets and weights."""
    op, x, seen = TemporalInterlace(32, 8), torch.randn(16, 32, 2, 2), {}
    op.offset_net.register_forward_hook(lambda m, i, out: seen.update(offsets=m.to_offsets(out.detach())))
    op.weight_net.register_forward_hook(lambda m, i, out: seen.update(weights=m.to_weights(out.detach())))
    op(x)
    offsets, weights = op.offsets_and_weights(x)  # reverse groups appended
    assert torch.equal(seen["offsets"], offsets[:, :2]) and torch.equal(seen["weights"], weights[:, :, :2])
    assert seen["offsets"].shape == (2, 2) and seen["weights"].shape == (2, 8, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels=20, num_segments=8), "multiple of the 4 channel groups"),
    (dict(channels=64, num_segments=8, groups=0), "groups"),
    (dict(channels=64, num_segments=8, boundary="reflect"), "boundary"),
    (dict(channels=64, num_segments=8, offset_range=0), "offset_range"),
    # offsets start at +0.5 (last bias logit(0.5 + 0.25 / r)): a range up to 0.5 cannot hold them (before: a
    # "math domain error" from inside OffsetNet)
    (dict(channels=64, num_segments=8, offset_range=0.5), r"offset_range must be > 0.5 .* got 0.5"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemporalInterlace(**kwargs)


def test_wrong_input_shape_names_expected_t():
    op = TemporalInterlace(64, 8)
    with pytest.raises(ValueError, match="T = 8"):
        op(torch.randn(12, 64, 3, 3))
    with pytest.raises(ValueError, match="64"):
        op(torch.randn(16, 32, 3, 3))


def saved_activation_bytes(fn, x: torch.Tensor) -> tuple[int, int]:
    """(bytes of tensors autograd saves for backward, bytes of those that alias the input x)."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn(x)
    unique = {t.untyped_storage().data_ptr(): t for t in saved}
    total = sum(t.untyped_storage().nbytes() for t in unique.values())
    own = sum(t.untyped_storage().nbytes() for p, t in unique.items() if p == x.untyped_storage().data_ptr())
    return total, own


def test_backward_keeps_only_the_input_and_small_tensors():
    """Issue 'TIN at memory speed': no per-tap copy of the activation is kept for backward."""
    x = torch.randn(2 * 8, 64, 14, 14, requires_grad=True)
    total, own = saved_activation_bytes(TemporalInterlace(64, 8), x)
    assert own == x.numel() * 4
    assert total - own < 0.01 * own  # offsets, weights, indices, coefficients, net activations


def test_compiled_tin_matches_eager_without_graph_break():
    torch.manual_seed(0)
    op = TemporalInterlace(32, 8)
    with torch.no_grad():
        op.offset_net.fc2.bias.uniform_(-3, 3)
    compiled = torch.compile(op, backend="aot_eager", fullgraph=True)
    x = torch.randn(16, 32, 5, 5)
    results = []
    for fn in (op, compiled):
        xs = x.clone().requires_grad_()
        y = fn(xs)
        y.square().sum().backward()
        results.append((y, xs.grad, op.offset_net.fc2.bias.grad.clone()))
        op.zero_grad()
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


# --- tinlab::tin_nets: the descriptor, OffsetNet and WeightNet as one op (CUDA and meta; tested here on CPU) ---

def fused(monkeypatch) -> None:
    """Make TIN layers take the fused nets on the CPU too (there they run tin_nets' PyTorch path)."""
    monkeypatch.setattr("tinlab.ops.tin._fusable", lambda rows: True)


def randomised(op: TemporalInterlace) -> TemporalInterlace:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    return op


@pytest.mark.parametrize("attention", [True, False], ids=["attention", "no-attention"])
@pytest.mark.parametrize("t, channels, groups, reverse", [(8, 32, 2, True), (5, 16, 1, False), (1, 8, 1, True),
                                                         (16, 64, 4, True)])
def test_fused_nets_compute_the_modules_function_and_gradients_in_float64(t, channels, groups, reverse, attention):
    from tinlab.ops.tin import tin_nets

    op = randomised(TemporalInterlace(channels, t, groups=groups, reverse=reverse, attention=attention).double())
    x = torch.randn(3 * t, channels, 3, 4, dtype=torch.float64, requires_grad=True)
    params = [p for p in op._net_parameters() if p is not None]
    rows = op._rows(x)
    z, v = op._nets(rows)  # the modules (CPU path)
    gz, gv = torch.randn_like(z), (torch.randn_like(v) if v is not None else None)
    want = torch.autograd.grad((z * gz).sum() + ((v * gv).sum() if attention else 0), [x, *params])
    fz, fv, d = tin_nets(rows, op.num_channel_groups, *op._net_parameters())
    assert not d.requires_grad and d.dtype == torch.float64
    torch.testing.assert_close(fz, z, rtol=1e-12, atol=1e-12)
    assert fv.numel() == 0 if not attention else torch.allclose(fv, v, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad((fz * gz).sum() + ((fv * gv).sum() if attention else 0), [x, *params])
    for name, a, b in zip(["x"] + [f"param {i}" for i in range(len(params))], got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("name, fused_op", [("tin", "tinlab.tin_block"), ("rtcn", "tinlab.tin_nets")])
def test_a_tin_network_with_fused_nets_trains_as_with_the_modules(monkeypatch, name, fused_op):
    """A whole TIN (r-TCN) ResNet in float64, forward and backward: every output and parameter gradient equal
    to the modules' path within rounding; and torch.compile traces the fused ops without a graph break."""
    import tinlab

    def step(model, clip):
        model.zero_grad()
        out = model(clip)
        out.square().sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    torch.manual_seed(0)
    model = tinlab.create_model(name, backbone="resnet18", num_classes=5, num_segments=4, width_mult=0.25,
                                small_stem=True).double().eval()  # eval: BatchNorm statistics stay put
    clip = torch.randn(2, 4, 3, 16, 16, dtype=torch.float64)
    want = step(model, clip)
    fused(monkeypatch)
    layer = next(m for m in model.modules() if isinstance(m, TemporalInterlace))
    assert fused_op in dispatched(layer, torch.randn(8, layer.channels, 4, 4, dtype=torch.float64))
    got = step(model, clip)
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    for name in want[1]:
        torch.testing.assert_close(got[1][name], want[1][name], rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(clip)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = step(torch.compile(model, backend="aot_eager", fullgraph=True), clip)
    torch.testing.assert_close(compiled[0], want[0], rtol=1e-10, atol=1e-12)
    torch._dynamo.reset()


def dispatched(op: TemporalInterlace, x: torch.Tensor) -> set[str]:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            names.add(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    names: set[str] = set()
    with Seen():
        op(x)
    return names


def test_the_nets_fuse_on_the_meta_device_unless_a_hook_watches_them():
    """Fused where a GPU runs (meta counts its launches); a forward hook on a net or one of its layers (the
    offset monitor's sampled steps, a user's analysis) gets the modules, so it sees what it hooked."""
    from tinlab.engine.callbacks import InterlaceProbe
    from tinlab.models.recognizer import Recognizer  # noqa: F401  (the probe reads interlace_modules)

    with torch.device("meta"):
        op = TemporalInterlace(32, 8)
        x = torch.empty(16, 32, 4, 4)
    assert "tinlab.tin_block" in dispatched(op, x) and "aten.convolution" not in dispatched(op, x)
    handle = op.offset_net.fc1.register_forward_hook(lambda *a: None)
    assert "tinlab.tin_block" not in dispatched(op, x) and "aten.convolution" in dispatched(op, x)
    handle.remove()
    assert "tinlab.tin_block" in dispatched(op, x)
    cpu = TemporalInterlace(32, 8)
    assert "tinlab.tin_block" not in dispatched(cpu, torch.randn(16, 32, 4, 4))  # the CPU keeps the modules

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.op = op

        def interlace_modules(self):
            return [("op", self.op)]

    probe = InterlaceProbe(Holder())
    assert probe.active and "tinlab.tin_block" not in dispatched(op, x)  # sampling: the modules, hooked
    probe.active = False
    assert not op.offset_net._forward_hooks and "tinlab.tin_block" in dispatched(op, x)
    probe.active = True
    assert len(op.offset_net._forward_hooks) == 1 and len(op.weight_net._forward_hooks) == 1
    probe.remove()


def test_opcheck_of_the_nets_ops():
    """torch.library.opcheck: schema, fake (meta) implementation, autograd registration, AOT dispatch."""
    from tinlab.ops.tin import tin_block, tin_nets

    for attention in (True, False):
        op = randomised(TemporalInterlace(16, 4, groups=2, attention=attention))
        rows = op._rows(torch.randn(8, 16, 3, 3)).requires_grad_()
        params = [p.detach().clone().requires_grad_() if p is not None else None for p in op._net_parameters()]
        torch.library.opcheck(tin_nets, (rows, op.num_channel_groups, *params))
        torch.library.opcheck(tin_block, (rows, op.num_channel_groups, *params, 2.0, True, "zero"))
