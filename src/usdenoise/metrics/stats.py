"""Subject-level statistics for the study tables: bootstrap intervals and paired tests.

The subject (one patient / one fetus) is the unit of every statistic here. Images of one
subject are correlated, so treating them as independent samples gives intervals that are
too narrow and p-values that are too small. Every function therefore averages the images
of a subject first and resamples or tests subjects, never images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from usdenoise.core.errors import UsdenoiseError

#: Below this many subjects the two-sided exact Wilcoxon test cannot reach p < 0.05
#: (with n = 5 the smallest possible p is 2 / 2**5 = 0.0625).
MIN_WILCOXON_SUBJECTS = 6

WILCOXON = "wilcoxon signed-rank, two-sided"


class Summary(NamedTuple):
    """Mean over subjects with a percentile bootstrap interval.

    ``n_missing`` counts the values that were NaN (e.g. an HC error where no head was
    found); they are left out, not imputed, so a table must show how many there were.
    ``low``/``high`` are NaN when there is only one subject (no spread to resample).
    """

    mean: float
    low: float
    high: float
    n_subjects: int
    n_missing: int


class Paired(NamedTuple):
    """Arm minus baseline over the subjects that have a value in both.

    ``test`` names the test and says when it is underpowered (fewer than 6 subjects).
    """

    mean_difference: float
    low: float
    high: float
    p_value: float
    test: str
    n_subjects: int


class SubjectMeans(tuple):
    """``(subjects, means)``: unpacks as a pair, and also reports what was left out.

    ``n_dropped``: subjects whose values were all NaN; ``n_missing``: NaN values in all.
    """

    n_dropped: int
    n_missing: int

    def __new__(
        cls, subjects: np.ndarray, means: np.ndarray, n_dropped: int, n_missing: int
    ) -> SubjectMeans:
        self = super().__new__(cls, (subjects, means))
        self.n_dropped = n_dropped
        self.n_missing = n_missing
        return self

    @property
    def subjects(self) -> np.ndarray:
        return self[0]

    @property
    def means(self) -> np.ndarray:
        return self[1]


def _as_values(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsdenoiseError(f"{what}: values must be numbers ({exc})") from None
    if arr.ndim != 1:
        raise UsdenoiseError(f"{what}: expected a 1-D sequence of values, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise UsdenoiseError(f"{what}: values contain infinity (use NaN for a missing value)")
    return arr


def subject_means(
    values: Any, subjects: Sequence[Any] | np.ndarray | None = None, *, what: str = "values"
) -> SubjectMeans:
    """Average the images of each subject, ignoring NaN values.

    Returns ``(unique_subjects, means)`` sorted by subject id; the result also carries
    ``n_dropped`` (subjects with only NaN, removed) and ``n_missing`` (NaN values).
    ``subjects=None`` treats every value as its own subject.
    """
    arr = _as_values(values, what)
    if subjects is None:
        subj = np.arange(arr.size)
    else:
        subj = np.asarray(subjects)
        if subj.ndim != 1 or subj.size != arr.size:
            raise UsdenoiseError(
                f"{what}: {arr.size} values but {subj.size} subject ids; give one id per value"
            )
    if arr.size == 0:
        return SubjectMeans(subj[:0], arr, 0, 0)
    unique, inverse = np.unique(subj, return_inverse=True)
    inverse = inverse.reshape(-1)
    ok = ~np.isnan(arr)
    counts = np.bincount(inverse[ok], minlength=unique.size)
    sums = np.bincount(inverse[ok], weights=arr[ok], minlength=unique.size)
    keep = counts > 0
    means = sums[keep] / counts[keep]
    return SubjectMeans(
        unique[keep], means, int(np.count_nonzero(~keep)), int(np.count_nonzero(~ok))
    )


def _check_options(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise UsdenoiseError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if int(resamples) != resamples or resamples < 1:
        raise UsdenoiseError(f"resamples must be a positive integer, got {resamples}")


def _percentile_interval(
    means: np.ndarray, confidence: float, resamples: int, seed: int | np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``means`` (one value per subject).

    Draws all resamples at once as an index matrix ``[resamples, n]`` (the same draw as
    ``scipy.stats.bootstrap`` with one batch, so the same seed gives the same interval).
    """
    n = means.size
    if n < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (int(resamples), n))
    boot = means[idx].mean(axis=-1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    # A mean of resampled values cannot leave [min, max]; clipping removes rounding
    # noise, so constant values give an exactly zero-width interval.
    lo_b, hi_b = float(means.min()), float(means.max())
    return float(np.clip(low, lo_b, hi_b)), float(np.clip(high, lo_b, hi_b))


def _mean(means: np.ndarray) -> float:
    return float(np.clip(means.mean(), means.min(), means.max()))


def bootstrap_ci(
    values: Any,
    subjects: Sequence[Any] | np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator = 0,
) -> Summary:
    """Mean over subjects with a percentile bootstrap interval, resampling subjects.

    Images are averaged per subject first; subjects are then drawn with replacement, so
    the interval reflects how much the result would change with other patients.
    """
    _check_options(confidence, resamples)
    sm = subject_means(values, subjects)
    means = sm.means
    if means.size == 0:
        raise UsdenoiseError(
            "bootstrap_ci: no values to summarise"
            + (f" (all {sm.n_missing} values are missing)" if sm.n_missing else "")
        )
    low, high = _percentile_interval(means, confidence, resamples, seed)
    return Summary(_mean(means), low, high, int(means.size), sm.n_missing)


def paired_comparison(
    arm: Any,
    baseline: Any,
    subjects: Sequence[Any] | np.ndarray | None,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator = 0,
) -> Paired:
    """Compare an arm with the baseline (the ``none`` arm) subject by subject.

    ``arm[i]`` and ``baseline[i]`` are the same image under the two arms. Both are
    averaged per subject; subjects missing in either arm are left out. Returns the mean
    difference (arm - baseline) with a bootstrap interval over subjects and the two-sided
    Wilcoxon signed-rank p-value (no normality assumption; p = 1 when nothing differs).
    """
    from scipy import stats as sps

    _check_options(confidence, resamples)
    a = _as_values(arm, "arm")
    b = _as_values(baseline, "baseline")
    if a.size != b.size:
        raise UsdenoiseError(
            f"paired_comparison: arm has {a.size} values but baseline has {b.size}; "
            "both must hold one value per image, in the same order"
        )
    sa = subject_means(a, subjects, what="arm")
    sb = subject_means(b, subjects, what="baseline")
    common, ia, ib = np.intersect1d(sa.subjects, sb.subjects, return_indices=True)
    if common.size == 0:
        raise UsdenoiseError("paired_comparison: no subject has a value in both arm and baseline")
    diff = sa.means[ia] - sb.means[ib]
    n = int(diff.size)
    low, high = _percentile_interval(diff, confidence, resamples, seed)

    test = WILCOXON
    if not np.any(diff != 0):
        p = 1.0
    else:
        try:
            p = float(sps.wilcoxon(diff, alternative="two-sided").pvalue)
        except ValueError:  # scipy refuses some degenerate tiny samples
            p = math.nan
    if n < MIN_WILCOXON_SUBJECTS:
        test += f" (underpowered: {n} subjects < {MIN_WILCOXON_SUBJECTS})"
    return Paired(_mean(diff), low, high, p, test, n)


def format_summary(summary: Summary | Paired, digits: int = 3) -> str:
    """``"0.912 [0.901, 0.923]"`` for tables; ``"0.912 [n/a]"`` when there is no interval."""
    mean = summary.mean_difference if isinstance(summary, Paired) else summary.mean
    if math.isnan(summary.low) or math.isnan(summary.high):
        return f"{mean:.{digits}f} [n/a]"
    return f"{mean:.{digits}f} [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"
