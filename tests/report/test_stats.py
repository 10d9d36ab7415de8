"""Intervals and paired tests against small cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from tinlab.report.stats import (NO_VERDICT, bootstrap_interval, holm, mcnemar_exact, paired_bootstrap_difference,
                                 seed_test, verdict, videos_needed)


def test_exact_mcnemar_small_cases():
    a = np.array([1, 1, 1, 1, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1], bool)
    assert mcnemar_exact(a, b) == (5, 0, pytest.approx(2 * 0.5 ** 5))  # 0.0625
    assert mcnemar_exact(b, a)[2] == pytest.approx(0.0625)  # symmetric
    six = np.ones(6, bool)
    assert mcnemar_exact(six, ~six)[2] == pytest.approx(2 / 64)
    # one video only A gets right, five only B: P(X <= 1 | 6, 1/2) = 7/64, two-sided 14/64
    a = np.array([1, 0, 0, 0, 0, 0], bool)
    assert mcnemar_exact(a, ~a) == (1, 5, pytest.approx(14 / 64))
    # balanced discordance: p = 1; no discordance at all: p = 1
    a = np.array([1, 1, 1, 0, 0, 0], bool)
    assert mcnemar_exact(a, ~a)[2] == pytest.approx(1.0)
    assert mcnemar_exact(a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="same videos"):
        mcnemar_exact(a, a[:5])


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> non-decreasing 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged
    # an untested comparison (NaN: one run) stays NaN and does not count in m
    out = holm([0.01, np.nan, 0.04, 0.03])
    assert np.isnan(out[1]) and out[[0, 2, 3]] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan, np.nan])).all()


def test_seed_test_by_hand():
    from scipy.stats import t as student

    # paired: differences 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3) = 3.4641 on 2 df
    a, b = [0.6, 0.8, 0.9], [0.5, 0.6, 0.6]
    assert seed_test(a, b, paired=True) == pytest.approx(2 * student.sf(2 * 3 ** 0.5, 2))
    # Welch on the same numbers: means 0.7667 vs 0.5667, variances 0.02333 and 0.00333 over 3 runs each
    se2 = (0.07 / 3) / 3 + (0.01 / 3) / 3
    t = 0.2 / se2 ** 0.5
    dof = se2 ** 2 / (((0.07 / 3) / 3) ** 2 / 2 + ((0.01 / 3) / 3) ** 2 / 2)
    assert seed_test(a, b, paired=False) == pytest.approx(2 * student.sf(t, dof))
    assert seed_test(a, a, paired=True) == 1.0  # identical runs: no evidence
    assert seed_test([0.7, 0.8], [0.6, 0.7], paired=True) == 0.0  # a constant non-zero difference
    assert np.isnan(seed_test([0.9], [0.1, 0.2], paired=False))  # one run: training noise unmeasured
    with pytest.raises(ValueError, match="as many runs"):
        seed_test([0.1, 0.2], [0.1, 0.2, 0.3], paired=True)


def test_bootstrap_interval_small_cases():
    # two videos, one right: resampled accuracies 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
    acc, lo, hi = bootstrap_interval([1, 0])
    assert (acc, lo, hi) == (0.5, 0.0, 1.0)
    assert bootstrap_interval([1, 1, 1]) == (1.0, 1.0, 1.0)
    # two seeds, one right on every video and one wrong on every video: resampling videos alone would give
    # [0.5, 0.5]; resampling seeds too gives 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
    assert bootstrap_interval([[1, 1, 1, 1], [0, 0, 0, 0]]) == (0.5, 0.0, 1.0)
    # fixed seed: the same interval every time
    x = np.random.default_rng(1).random(50) < 0.7
    assert bootstrap_interval(x) == bootstrap_interval(x)


def test_paired_bootstrap_uses_the_pairing():
    # A right on videos 0-59, B on 0-54: they differ on 5 videos of 100. Paired, the resampled difference
    # is (number of draws among those 5) / 100 ~ Binomial(100, 0.05) / 100: 95% of it in [0.01, 0.10].
    # Unpaired, the interval would be about +-0.13 wide.
    a, b = np.arange(100) < 60, np.arange(100) < 55
    diff, lo, hi = paired_bootstrap_difference(a, b)
    assert diff == pytest.approx(0.05)
    assert lo in (pytest.approx(0.01), pytest.approx(0.02)) and hi in (pytest.approx(0.09), pytest.approx(0.1),
                                                                        pytest.approx(0.11))
    assert paired_bootstrap_difference(b, a) == pytest.approx((-0.05, -hi, -lo))
    assert paired_bootstrap_difference(np.ones(4, bool), np.zeros(4, bool)) == (1.0, 1.0, 1.0)


def test_identical_predictions_differ_by_exactly_zero_with_p_one():
    x = np.random.default_rng(0).random((3, 40)) < 0.6
    assert paired_bootstrap_difference(x, x) == (0.0, 0.0, 0.0)
    assert mcnemar_exact(x[0], x[0]) == (0, 0, 1.0)
    assert verdict(0.0, 0.0, 0.0, 1.0) == "not distinguishable at this size"


def test_videos_needed_by_hand():
    # 5 vs 0 discordant of 6 videos: p = 0.0625. At 7 videos the proportions give round(35/6) = 6 vs 0: p = 1/32.
    assert videos_needed(5, 0, 6, 0.05) == 7
    assert videos_needed(6, 0, 6, 0.05) == 6  # already significant
    assert videos_needed(3, 3, 100, 0.05) is None  # no observed difference: no number of videos helps
    n = videos_needed(12, 8, 100, 0.05)  # 12% vs 8% discordant: p(100) = 0.50
    from scipy.stats import binomtest
    p = lambda m: binomtest(round(12 * m / 100), round(12 * m / 100) + round(8 * m / 100), 0.5).pvalue  # noqa: E731
    assert p(n) < 0.05 <= p(n - 1)


def test_verdicts():
    assert verdict(0.05, 0.01, 0.09, 0.01) == "better"
    assert verdict(-0.05, -0.09, -0.01, 0.01) == "worse"
    assert verdict(0.05, -0.01, 0.09, 0.01) == "not distinguishable at this size"  # interval holds 0
    assert verdict(0.05, 0.01, 0.09, 0.2) == "not distinguishable at this size"  # adjusted p too large
    assert verdict(0.5, 0.4, 0.6, float("nan")) == NO_VERDICT  # one run: no directional verdict, however large
