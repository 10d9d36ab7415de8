"""tinlab.measure.cost: fvcore counts with tinlab's handles, cross-checked with torch's counter."""
from __future__ import annotations

import importlib
from math import prod

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tinlab
from fvcore.nn import FlopCountAnalysis

from tinlab.measure.cost import flop_analysis, flops, handles, parameters
from tinlab.ops import interlace

# Modules by name (``tinlab.ops.interlacing`` is also a function of the package).
flops_module, interlace_module, tin_module, tada_module = (importlib.import_module(f"tinlab.{m}") for m in
                                                           ("measure.cost", "ops.interlacing", "ops.tin", "ops.tada"))

SMALL = dict(backbone="resnet18", num_classes=10, width_mult=0.5, small_stem=True)

# The independent side of the cross-check: torch's FlopCounterMode counts what actually runs, with
# torch's own formulas for convolutions and matmuls (2 per multiply-add) and one generic rule per
# elementwise aten op (the convention of the module doc: a multiply or a multiply-add is 1, a mean 1
# per input element). tinlab's fused ops get NO formula here: they run as their plain PyTorch
# decompositions, whose multiplies are counted like any others. A wrong handle in FLOP_HANDLES (say 1
# instead of 2 per interlaced element) therefore disagrees with this count.
# Index arithmetic on integer tensors (the decomposition's row numbers) is not model arithmetic: the
# rules see raw tensors (``_get_raw``) and count floating-point results only.
aten = torch.ops.aten


def _rule(count):
    def formula(*args, out_val=None, **kwargs):
        return 2 * count(*args, out=out_val) if out_val.is_floating_point() else 0
    formula._get_raw = True
    return formula


_per_output = _rule(lambda *args, out: out.numel())
_per_input = _rule(lambda x, *args, out: x.numel())
_pool = _rule(lambda x, kernel, *args, out: out.numel() * prod(kernel))


def _layer_norm(x, *args, out_val=None, **kwargs):
    """A layer norm: mean, square, mean of squares, scale by 1/sd, affine multiply = 5 per element."""
    return 2 * 5 * x.numel()


_layer_norm._get_raw = True
ELEMENTWISE = {aten.mul: _per_output, aten.mul_: _per_output, aten.div: _per_output, aten.div_: _per_output,
               aten.addcmul: _per_output, aten.addcmul_: _per_output, aten.mean: _per_input,
               aten._adaptive_avg_pool2d: _per_input, aten.avg_pool3d: _pool, aten.avg_pool2d: _pool,
               aten._softmax: _per_output, aten.native_layer_norm: _layer_norm}


def counted_as_decomposed(model: torch.nn.Module, clip: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> int:
    """Multiply-adds of ``model(clip)`` by FlopCounterMode, tinlab's custom ops run as plain PyTorch."""
    with monkeypatch.context() as m:
        m.setattr(interlace_module, "interlace_frames", interlace_module._interlace_frames_torch)
        m.setattr(tin_module, "tin_interlace", lambda rows, z, v, r, reverse, boundary: interlace_module.
                  _interlace_frames_torch(rows, *interlace_module.tin_coefficients(z, v, rows.shape[1], r, reverse,
                                                                                   boundary, rows.dtype)))
        m.setattr(tin_module, "leading_row_mean", lambda x, rows: x[:, :, :rows].mean(-1).flatten(2).transpose(1, 2))
        m.setattr(tada_module, "temporal_avg_pool", tada_module.temporal_avg_pool_3d)  # not the CPU fast path
        with FlopCounterMode(display=False, custom_mapping=ELEMENTWISE) as counter, torch.no_grad():
            model.eval()(clip)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


@pytest.mark.parametrize("name", tinlab.list_models())
def test_fvcore_agrees_with_torch_flop_counter_on_the_decomposed_ops(name, monkeypatch):
    m = tinlab.create_model(name, num_segments=8, **SMALL).eval()
    clip = torch.randn(1, 8, 3, 16, 16)
    analysis = flop_analysis(m, clip)
    assert not analysis.unsupported_ops(), dict(analysis.unsupported_ops())
    assert flops(m, clip) == counted_as_decomposed(m, clip, monkeypatch)


def test_the_cross_check_catches_a_wrong_handle(monkeypatch):
    """Plant a defect: TIN's fused op counted one multiply-add short."""
    m, clip = tinlab.create_model("tin", num_segments=8, **SMALL).eval(), torch.randn(1, 8, 3, 16, 16)
    right = tin_module.FLOP_HANDLES["tinlab::tin_interlace"]
    monkeypatch.setitem(tin_module.FLOP_HANDLES, "tinlab::tin_interlace", lambda i, o: right(i, o) - 1)
    assert flops(m, clip) < counted_as_decomposed(m, clip, monkeypatch)


def test_an_op_nobody_counts_is_an_error_naming_it(monkeypatch):
    """A registered module's custom op without a handle: flops() raises, never counts it as 0."""
    monkeypatch.delitem(tin_module.FLOP_HANDLES, "tinlab::tin_interlace")
    m = tinlab.create_model("tin", num_segments=8, **SMALL)
    with pytest.raises(RuntimeError, match=r"no FLOP handle for \['tinlab::tin_interlace'\]"):
        flops(m, torch.randn(1, 8, 3, 16, 16))


def test_temporal_ops_arithmetic_is_counted():
    clip = torch.randn(1, 8, 3, 16, 16)
    cost = {n: flops(tinlab.create_model(n, num_segments=8, **SMALL), clip) for n in tinlab.list_models()}
    assert cost["tsm"] == cost["tsn"]  # a shift moves data only
    assert cost["tin"] > cost["tsn"] and cost["rtcn"] > cost["tin"] and cost["tada"] > cost["tsn"]
    assert cost["tadav2"] > cost["tsn"]
    by_op = flop_analysis(tinlab.create_model("tin", num_segments=8, **SMALL), clip).by_operator()
    assert by_op["tin_interlace"] > 0 and by_op["leading_row_mean"] > 0


def test_interlace_counts_two_multiply_adds_per_element():
    class Op(torch.nn.Module):
        def forward(self, x, o, w):
            return interlace(x, o, w)

    x, o, w = torch.randn(2, 8, 4, 5, 5), torch.rand(2, 2), torch.rand(2, 8, 2)
    analysis = FlopCountAnalysis(Op(), (x, o, w)).set_op_handle(**handles())
    assert analysis.by_operator()["interlace_frames"] == 2 * x.numel()


def test_parameters_tsn_equals_tsm_and_tin_adds_its_nets_exactly():
    p = {n: parameters(tinlab.create_model(n, backbone="resnet50", num_classes=174, num_segments=8))
         for n in ("tsn", "tsm", "tin")}
    assert p["tsn"] == p["tsm"] == 23_864_558  # 23.9 M published for 174 classes
    t = 8
    folds = [c // 4 for c in [64, 256, 256, 256, 512, 512, 512, 512, 1024, 1024, 1024, 1024, 1024, 1024,
                              2048, 2048]]  # input channels of the 16 bottlenecks of ResNet-50
    assert p["tin"] - p["tsn"] == sum(9 * f + t * t + 3 * t + 5 for f in folds)


@pytest.mark.slow
def test_resnet50_tsn_matches_published_gflops():
    m = tinlab.create_model("tsn", backbone="resnet50", num_classes=174, num_segments=8)
    gflops = flops(m, torch.zeros(1, 8, 3, 224, 224)) / 1e9
    assert gflops == pytest.approx(32.9, rel=0.01)  # published: 8 x 4.11 G
