"""Intervals and paired tests for accuracies measured on the same validation videos.

Every function takes per-video correctness: a boolean array (S, N) of S runs (seeds) of one model on the
same N videos, in the same video order (``tinlab evaluate`` writes one row per video,
``<metrics>.predictions.csv``).

* :func:`bootstrap_interval`: the accuracy (mean over seeds and videos) with a percentile interval from
  resampling videos with replacement and, with several seeds, seeds with replacement too (a two-level
  bootstrap: the interval covers both which videos were drawn and which training runs);
* :func:`paired_bootstrap_difference`: the difference of two models' accuracies with its interval, videos
  resampled jointly for both models (the pairing); with the same number of seeds on both sides, seeds
  are paired too (run s of A with run s of B: the same seed gives both the same training-clip order and
  test views), else each side's seeds are resampled on their own;
* :func:`mcnemar_exact`: the exact McNemar test on one run of each model (two-sided binomial test of the
  discordant videos, ``scipy.stats.binomtest``);
* :func:`seed_test`: a t-test on the per-seed accuracies of two rows (paired by seed where they pair), the
  test of the verdict: a training run, not a video, is the unit that a re-run draws anew;
* :func:`holm`: Holm's step-down adjustment of a family of p-values;
* :func:`videos_needed`: how many videos it would take, at the observed discordance rates, for the exact
  McNemar test to reach a given level.

Accuracies and differences are fractions in [0, 1] here; the tables multiply by 100.

Example:
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0, 1, 1]], bool); b = np.array([[0, 0, 0, 0, 0, 0]], bool)
    >>> mcnemar_exact(a[0], b[0])  # 5 videos only A gets right, none only B: 2 * 0.5**5
    (5, 0, 0.0625)
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, ttest_ind, ttest_rel

RESAMPLES = 10_000  # bootstrap resamples of every interval and difference
LEVEL = 0.95
SEED = 0  # the bootstrap's random generator: the same seed, the same interval, on any machine
_CHUNK = 500  # resamples drawn at once (bounded memory: CHUNK x N indices)


def _as_runs(correct) -> np.ndarray:
    runs = np.asarray(correct, dtype=bool)
    if runs.ndim == 1:
        runs = runs[None]
    if runs.ndim != 2 or runs.shape[1] == 0:
        raise ValueError(f"per-video correctness must be (runs, videos) with videos > 0, got shape {runs.shape}")
    return runs


def _resampled_means(runs: np.ndarray, video_idx: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
    """Accuracy of each resample: the mean over the drawn seeds ``seeds`` (B, S) of each seed's accuracy
    on the resampled videos ``video_idx`` (B, N); one run: its accuracy on them."""
    per_video = runs.astype(np.float64)
    s = runs.shape[0]
    if s == 1:
        return per_video[0][video_idx].mean(1)
    # mean over drawn seeds of the per-video correctness, then over the drawn videos
    weights = (seeds[:, :, None] == np.arange(s)).sum(1) / s  # (B, S): how often each seed was drawn
    return np.einsum("bs,bsn->b", weights, per_video[:, video_idx].transpose(1, 0, 2)) / video_idx.shape[1]


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_interval(correct, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED
                       ) -> tuple[float, float, float]:
    """(accuracy, lower, upper): the mean correctness and its percentile bootstrap interval."""
    runs = _as_runs(correct)
    rng = np.random.default_rng(seed)
    (s, n), samples = runs.shape, []
    for start in range(0, resamples, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))
        samples.append(_resampled_means(runs, idx, rng.integers(0, s, size=(len(idx), s))))
    return (float(runs.mean()), *_percentiles(np.concatenate(samples), level))


def paired_bootstrap_difference(correct_a, correct_b, resamples: int = RESAMPLES, level: float = LEVEL,
                                seed: int = SEED) -> tuple[float, float, float]:
    """(difference, lower, upper) of accuracy A - accuracy B on the same videos: the observed difference
    and the percentile interval of the paired bootstrap (identical inputs give exactly (0, 0, 0))."""
    a, b = _as_runs(correct_a), _as_runs(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired comparison needs the same videos: {a.shape[1]} against {b.shape[1]}")
    rng = np.random.default_rng(seed)
    n, samples = a.shape[1], []
    for start in range(0, resamples, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))
        seeds_a = rng.integers(0, a.shape[0], size=(len(idx), a.shape[0]))
        seeds_b = seeds_a if a.shape[0] == b.shape[0] else rng.integers(0, b.shape[0], size=(len(idx), b.shape[0]))
        samples.append(_resampled_means(a, idx, seeds_a) - _resampled_means(b, idx, seeds_b))
    return (float(a.mean() - b.mean()), *_percentiles(np.concatenate(samples), level))


def mcnemar_exact(correct_a, correct_b) -> tuple[int, int, float]:
    """(only A right, only B right, two-sided exact p-value) for one run of each model on the same videos.
    Without discordant videos there is no evidence either way: p = 1."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"McNemar needs one run of each model on the same videos, got shapes {a.shape}, {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given): the k-th smallest of m is multiplied by
    m - k + 1, made non-decreasing, capped at 1. Reject at level a where adjusted p < a. NaN entries (no
    test) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.size, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return out


def videos_needed(only_a: int, only_b: int, videos: int, alpha: float, limit: int = 10_000_000) -> int | None:
    """The smallest number of videos at which the exact McNemar test, with the discordant videos in the
    observed proportions (only_a / videos and only_b / videos, rounded), has p < alpha; None when the
    observed difference is 0 (no number of videos makes it significant) or it takes more than ``limit``."""
    if only_a == only_b or videos <= 0:
        return None

    def p_at(n: int) -> float:
        a, b = round(only_a * n / videos), round(only_b * n / videos)
        return 1.0 if a + b == 0 else binomtest(a, a + b, 0.5).pvalue

    if p_at(videos) < alpha:
        return videos
    hi = videos
    while p_at(hi) >= alpha:
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2  # p_at(lo) >= alpha; binary search, then step down over rounding wiggles
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if p_at(mid) >= alpha else (lo, mid)
    return hi


def seed_test(acc_a, acc_b, paired: bool) -> float:
    """Two-sided p-value of a difference between two rows' per-seed accuracies (the training run is the unit
    of replication): a paired t-test on the per-seed differences when the seeds pair (run s of A against run
    s of B), else Welch's t-test. NaN when either side has fewer than 2 runs (training noise unmeasured).
    Constant differences are exact: p = 1 when they are all 0, 0 when they are all the same non-zero value.

    Example:
        >>> seed_test([0.8, 0.7, 0.9], [0.8, 0.7, 0.9], paired=True)
        1.0
    """
    a, b = np.asarray(acc_a, np.float64), np.asarray(acc_b, np.float64)
    if a.size < 2 or b.size < 2:
        return math.nan
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired seeds need as many runs on both sides, got {a.size} and {b.size}")
        d = a - b
        if np.ptp(d) <= 1e-12:  # constant (accuracies are k/N: their differences carry rounding only)
            return 1.0 if abs(d[0]) <= 1e-12 else 0.0
        return float(ttest_rel(a, b).pvalue)
    if np.ptp(a) <= 1e-12 and np.ptp(b) <= 1e-12:
        return 1.0 if abs(a[0] - b[0]) <= 1e-12 else 0.0
    return float(ttest_ind(a, b, equal_var=False).pvalue)


NO_VERDICT = "no verdict: one run, training noise unmeasured"
UNDECIDED = "not distinguishable at this size"


def verdict(difference: float, lower: float, upper: float, p_adjusted: float, alpha: float = 1 - LEVEL) -> str:
    """"better" / "worse" when the adjusted p-value of the seed-level test is below alpha and the interval of
    the difference (over videos and seeds) excludes 0, both agreeing; :data:`NO_VERDICT` when the p-value is
    NaN (a row with one run); else :data:`UNDECIDED`."""
    if isinstance(p_adjusted, float) and math.isnan(p_adjusted):
        return NO_VERDICT
    if p_adjusted < alpha and (lower > 0 or upper < 0) and difference != 0:
        return "better" if difference > 0 else "worse"
    return UNDECIDED


def interval_text(value: float, lower: float, upper: float, digits: int = 1) -> str:
    """``"86.1 [80.6, 91.0]"`` for percentages."""
    if any(isinstance(v, float) and math.isnan(v) for v in (value, lower, upper)):
        return ""
    return f"{value:.{digits}f} [{lower:.{digits}f}, {upper:.{digits}f}]"
