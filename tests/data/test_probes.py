"""The temporal probes (tinlab.data.synthetic.PROBES): each generator's stated invariance, so that a model
looking at frames one at a time is at chance and only the named temporal ability separates the classes."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tinlab.data.presets import get_preset
from tinlab.data.synthetic import (COUNT_CHANGES, DATASETS, counting_pattern, ORDER_GAPS, PROBE_DATASETS, PROBES, SPEEDS,
                                   InvalidParamsError, SyntheticParams, change_sequences, generate, render_video,
                                   speed_positions, split_labels)

PROBE_NAMES = [name for name in DATASETS if name.startswith("probe-")]


def test_every_probe_names_its_dataset_and_what_it_takes():
    assert set(PROBE_DATASETS) == {"direction", "speed", "counting", "appearance"} | {f"order-{g}" for g in ORDER_GAPS}
    assert set(PROBE_DATASETS.values()) == set(DATASETS)
    assert all("chance" in text for text in PROBES.values())
    for name in PROBE_NAMES:
        assert get_preset(name).num_classes == len(DATASETS[name].classes)


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_classes_are_balanced(name):
    p = SyntheticParams(name, num_train=101, num_val=37, size=32, min_frames=8, max_frames=8)
    for split in ("train", "val"):
        counts = np.bincount(split_labels(p, split), minlength=len(DATASETS[name].classes))
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("gap", ORDER_GAPS)
def test_order_twins_hold_the_same_frames_and_the_flashes_are_gap_frames_apart(gap):
    name = f"probe-order-{gap}"
    for seed in range(20):
        first = render_video(name, 0, np.random.default_rng(seed), 8, 40)
        second = render_video(name, 1, np.random.default_rng(seed), 8, 40)
        assert np.array_equal(first[::-1], second)  # the same frames as a multiset, in reverse order
        brightness = first.reshape(8, -1).astype(float).mean(1)
        flashes = np.sort(np.argsort(brightness)[-2:])
        assert flashes[1] - flashes[0] == gap, (seed, brightness)


def test_speed_every_frames_position_is_uniform_whatever_the_speed():
    """A single frame's position has the same (uniform) distribution in every class: only the displacement
    between frames tells the speed."""
    size, n = 40, 8
    for label, speed in enumerate(SPEEDS):
        rng = np.random.default_rng(label)
        xs, ys = zip(*(speed_positions(label, rng, n, size) for _ in range(1500)))
        xs, ys = np.array(xs), np.array(ys)
        for t in (0, n - 1):
            assert stats.kstest(xs[:, t] / size, "uniform").pvalue > 1e-3
            assert stats.kstest(ys[:, t] / size, "uniform").pvalue > 1e-3
        step = np.hypot(*(np.mod(np.diff(a, axis=1) + size / 2, size) - size / 2 for a in (xs, ys)))
        np.testing.assert_allclose(step, speed * size / 20, rtol=1e-4)  # exactly this far, every frame


def test_counting_patterns_have_their_changes_and_half_of_each_colour():
    for k in COUNT_CHANGES:
        patterns = change_sequences(8, k)
        assert patterns
        for seq in patterns:
            assert sum(seq) == 4 and sum(a != b for a, b in zip(seq, seq[1:])) == k
    # the colours are swapped half the time: every frame shows either colour with probability 1/2 in every
    # class, so which colour a frame has says nothing about the count
    for label in range(len(COUNT_CHANGES)):
        rng = np.random.default_rng(label)
        patterns = np.stack([counting_pattern(label, rng, 8) for _ in range(4000)])
        assert (patterns.sum(1) == 4).all()
        assert np.abs(patterns.mean(0) - 0.5).max() < 0.04  # per frame position (sd of the mean: 0.008)


def test_probe_frames_are_exactly_the_frames_sampled(tmp_path):
    with pytest.raises(InvalidParamsError, match="min_frames = max_frames"):
        generate("probe-speed", tmp_path / "x", min_frames=8, max_frames=12)
    with pytest.raises(InvalidParamsError, match="two events 6 frames apart"):
        generate("probe-order-6", tmp_path / "y", min_frames=6, max_frames=6)
    root = generate("probe-order-2", tmp_path / "o", num_train=4, num_val=2, size=32, min_frames=8, max_frames=8)
    assert (root / "train.txt").read_text().split()[1] == "8"
    assert (root / "twins.json").read_text().strip() == "[1, 0]"
