"""Temporal ops on the tensor of a ResNet-50 layer-2 block: 8 clips x 8 frames x 256 x 28 x 28.

    pytest bench/test_ops.py --benchmark-only
"""
from __future__ import annotations

import pytest
import torch

from tinlab import list_temporal_ops
from tinlab.ops import create_temporal_op, interlace, interlace_reference

N, T, C, S = 8, 8, 256, 28
OPS = list_temporal_ops()  # every registered module, plug-ins included


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(N * T, C, S, S)


def _info(benchmark, name, mode):
    benchmark.extra_info.update({"op": name, "mode": mode, "shape": [N * T, C, S, S], "dtype": "float32"})


@pytest.mark.parametrize("name", ["copy", *OPS])
def test_forward(benchmark, x, name):
    benchmark.group = "op forward"
    _info(benchmark, name, "forward")
    op = (lambda v: v.clone()) if name == "copy" else create_temporal_op(name, C, T)
    with torch.inference_mode():
        benchmark(op, x)


@pytest.mark.parametrize("name", OPS)
def test_forward_backward(benchmark, x, name):
    benchmark.group = "op forward+backward"
    _info(benchmark, name, "forward+backward")
    op = create_temporal_op(name, C, T)
    xg, grad = x.clone().requires_grad_(), torch.randn_like(x)

    def step():
        xg.grad = None
        op(xg).backward(grad)
    benchmark(step)


@pytest.mark.parametrize("impl", [interlace, interlace_reference], ids=["fused", "gather_reference"])
def test_interlace(benchmark, x, impl):
    benchmark.group = "interlace forward"
    _info(benchmark, impl.__name__, "forward")
    x5 = x.view(N, T, C, S, S)
    offsets, weights = torch.rand(N, 4) * 4 - 2, torch.rand(N, T, 4) * 2
    benchmark(impl, x5, offsets, weights)
