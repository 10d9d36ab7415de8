"""Whole models: ResNet-50, 8 frames, 224x224, batch 1, inference; GFLOPs in extra_info.

    pytest bench/test_models.py --benchmark-only
"""
from __future__ import annotations

import pytest
import torch

import tinlab
from tinlab.measure.cost import flops


@pytest.mark.parametrize("name", tinlab.list_models())
def test_inference(benchmark, name):
    benchmark.group = "R50 8x224 inference"
    torch.manual_seed(0)
    model = tinlab.create_model(name, backbone="resnet50", num_classes=174, num_segments=8).eval()
    clip = torch.randn(1, 8, 3, 224, 224)
    benchmark.extra_info.update({"model": name, "shape": list(clip.shape), "gflops": flops(model, clip) / 1e9})

    def infer():
        with torch.inference_mode():
            model(clip)
    benchmark.pedantic(infer, rounds=5, iterations=1, warmup_rounds=1)
