"""bench/bandwidth_model.py: the bytes the temporal kernels move per training step, from the model's own
shapes; the committed reference and the README quote what it computes."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bandwidth_model  # noqa: E402


def test_the_shapes_are_the_networks_and_tin_moves_its_fold_twice_more():
    shapes = bandwidth_model.block_shapes("tin", frames=8, batch=1)
    assert len(shapes) == 16  # one per ResNet-50 bottleneck
    assert shapes[0] == (8 * 64 * 56 * 56, 8 * 16 * 56 * 56)  # layer1.0: 64 channels at 56 x 56, fold C / 4
    assert shapes[-1] == (8 * 2048 * 7 * 7, 8 * 512 * 7 * 7)
    table = bandwidth_model.model_table(batch=1, frames=8, dtype="float32").set_index(["model", "kernel"])
    total = table.megabytes
    x_bytes = sum(x for x, _ in shapes) * 4 / 1e6
    assert total["tsm", "total"] == pytest.approx(4 * x_bytes)  # the shift: read + write, forward + backward
    assert total["tin", "total"] == pytest.approx((4 + 3 / 4) * x_bytes)  # + descriptor + coefficient gradients


def test_the_reference_and_the_readme_quote_what_the_model_computes():
    reference = pd.read_csv(REPO / "results" / "reference" / "bandwidth_model.csv")
    fresh = bandwidth_model.model_table(batch=8, frames=8, dtype="bfloat16").round(3)
    pd.testing.assert_frame_equal(reference, fresh, check_dtype=False)
    total = fresh[fresh.kernel == "total"].set_index("model")
    readme = (REPO / "README.md").read_text()
    mb, us = total.megabytes, total.floor_us_h100_sxm
    assert f"| {mb['tsm']:,.0f} MB | {mb['tin']:,.0f} MB | {mb['tin'] / mb['tsm']:.2f}× |" in readme
    assert f"| {us['tsm']:,.0f} µs | {us['tin']:,.0f} µs |" in readme
