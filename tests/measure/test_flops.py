"""tinlab.measure.flops: fvcore counts with tinlab's handles, cross-checked with torch's counter."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tinlab
from fvcore.nn import FlopCountAnalysis

from tinlab.measure.flops import FLOP_HANDLES, flop_analysis, flop_counter_mapping, flops, parameters
from tinlab.ops import interlace

SMALL = dict(backbone="resnet18", num_classes=10, width_mult=0.5, small_stem=True)


@pytest.mark.parametrize("name", tinlab.list_models())
def test_fvcore_agrees_with_torch_flop_counter_halved(name):
    m = tinlab.create_model(name, num_segments=8, **SMALL).eval()
    clip = torch.randn(1, 8, 3, 16, 16)
    analysis = flop_analysis(m, clip)
    assert not analysis.unsupported_ops(), dict(analysis.unsupported_ops())
    with FlopCounterMode(display=False, custom_mapping=flop_counter_mapping()) as counter, torch.no_grad():
        m(clip)
    assert flops(m, clip) == counter.get_total_flops() // 2
    assert counter.get_total_flops() % 2 == 0


def test_temporal_ops_arithmetic_is_counted():
    clip = torch.randn(1, 8, 3, 16, 16)
    cost = {n: flops(tinlab.create_model(n, num_segments=8, **SMALL), clip) for n in tinlab.list_models()}
    assert cost["tsm"] == cost["tsn"]  # a shift moves data only
    assert cost["tin"] > cost["tsn"] and cost["rtcn"] > cost["tin"] and cost["tada"] > cost["tsn"]
    by_op = flop_analysis(tinlab.create_model("tin", num_segments=8, **SMALL), clip).by_operator()
    assert by_op["interlace_frames"] > 0 and by_op["mean"] > 0


def test_interlace_counts_two_multiply_adds_per_element():
    class Op(torch.nn.Module):
        def forward(self, x, o, w):
            return interlace(x, o, w)

    x, o, w = torch.randn(2, 8, 4, 5, 5), torch.rand(2, 2), torch.rand(2, 8, 2)
    analysis = FlopCountAnalysis(Op(), (x, o, w)).set_op_handle(**FLOP_HANDLES)
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
