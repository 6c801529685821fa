"""Subject-level bootstrap intervals and paired tests (usdenoise.metrics.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from usdenoise.core.errors import UsdenoiseError
from usdenoise.metrics.stats import (
    Paired,
    Summary,
    bootstrap_ci,
    format_summary,
    paired_comparison,
    subject_means,
)

# ---- subject_means ---------------------------------------------------------------------


def test_subject_means_averages_images_of_a_subject_first():
    values = [1.0, 3.0, 10.0, 5.0, 7.0, 9.0]
    subjects = ["b", "b", "a", "c", "c", "c"]
    subj, means = subject_means(values, subjects)
    assert list(subj) == ["a", "b", "c"]
    np.testing.assert_allclose(means, [10.0, 2.0, 7.0])


def test_subject_means_ignores_nan_and_drops_all_nan_subjects():
    values = [1.0, math.nan, 4.0, math.nan, math.nan]
    subjects = [1, 1, 2, 3, 3]
    result = subject_means(values, subjects)
    subj, means = result
    assert list(subj) == [1, 2]
    np.testing.assert_allclose(means, [1.0, 4.0])
    assert result.n_dropped == 1
    assert result.n_missing == 3


def test_subject_means_without_subjects_is_one_subject_per_value():
    subj, means = subject_means([0.5, 0.25])
    assert list(subj) == [0, 1]
    np.testing.assert_allclose(means, [0.5, 0.25])


# ---- bootstrap_ci ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_bootstrap_matches_scipy_percentile_with_one_image_per_subject(seed):
    x = np.random.default_rng(123).normal(0.9, 0.05, size=40)
    ours = bootstrap_ci(x, confidence=0.9, resamples=1500, seed=seed)
    ref = sps.bootstrap(
        (x,), np.mean, method="percentile", confidence_level=0.9, n_resamples=1500,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    # Same resampling scheme and the same Generator draw: equal up to float rounding.
    assert ours.low == pytest.approx(ref.low, abs=1e-12)
    assert ours.high == pytest.approx(ref.high, abs=1e-12)
    assert ours.mean == pytest.approx(x.mean(), abs=1e-12)
    assert ours.n_subjects == 40 and ours.n_missing == 0


def test_bootstrap_agrees_with_scipy_for_an_independent_seed():
    # Different random draws: agreement is Monte Carlo only. The interval's half-width
    # is about 1.96 * 0.05 / sqrt(40) = 0.0155; with 4000 resamples the endpoints move
    # by well under 0.003 between seeds.
    x = np.random.default_rng(5).normal(0.9, 0.05, size=40)
    ours = bootstrap_ci(x, resamples=4000, seed=1)
    ref = sps.bootstrap(
        (x,), np.mean, method="percentile", n_resamples=4000, rng=np.random.default_rng(99)
    ).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.003)
    assert ours.high == pytest.approx(ref.high, abs=0.003)


def test_bootstrap_resamples_subjects_not_images():
    # Subject "a" has 9 images, "b"..."e" one each: resampling images would weight "a"
    # 9 times; resampling subjects gives the same interval as the 5 subject means.
    values = [0.0] * 9 + [1.0, 2.0, 3.0, 4.0]
    subjects = ["a"] * 9 + ["b", "c", "d", "e"]
    by_subject = bootstrap_ci(values, subjects, seed=3)
    means = bootstrap_ci([0.0, 1.0, 2.0, 3.0, 4.0], seed=3)
    assert by_subject == means
    assert by_subject.mean == pytest.approx(2.0)
    assert by_subject.n_subjects == 5


def test_bootstrap_same_seed_same_interval_other_seed_differs():
    x = np.random.default_rng(0).random(30)
    assert bootstrap_ci(x, seed=11) == bootstrap_ci(x, seed=11)
    assert bootstrap_ci(x, seed=11) != bootstrap_ci(x, seed=12)


def test_interval_contains_mean_and_narrows_with_more_subjects():
    rng = np.random.default_rng(1)
    small = bootstrap_ci(rng.normal(0.8, 0.1, size=10))
    large = bootstrap_ci(rng.normal(0.8, 0.1, size=1000))
    for s in (small, large):
        assert s.low < s.mean < s.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_higher_confidence_gives_a_wider_interval():
    x = np.random.default_rng(2).random(25)
    narrow = bootstrap_ci(x, confidence=0.8)
    wide = bootstrap_ci(x, confidence=0.99)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_constant_values_give_zero_width_interval():
    s = bootstrap_ci([0.1] * 7, ["s1", "s1", "s2", "s3", "s4", "s5", "s6"])
    assert s == Summary(0.1, 0.1, 0.1, 6, 0)


def test_missing_values_are_counted_not_imputed():
    s = bootstrap_ci([1.0, math.nan, 3.0, math.nan], [1, 1, 2, 3])
    assert s.n_subjects == 2 and s.n_missing == 2
    assert s.mean == pytest.approx(2.0)


def test_one_subject_has_no_interval():
    s = bootstrap_ci([0.5, 0.7], ["only", "only"])
    assert s.mean == pytest.approx(0.6) and s.n_subjects == 1
    assert math.isnan(s.low) and math.isnan(s.high)
    assert format_summary(s) == "0.600 [n/a]"


@pytest.mark.parametrize(
    ("values", "subjects", "kwargs", "match"),
    [
        ([], None, {}, "no values"),
        ([math.nan, math.nan], [1, 2], {}, "all 2 values are missing"),
        ([1.0, 2.0], [1], {}, "2 values but 1 subject"),
        ([[1.0, 2.0]], None, {}, "1-D"),
        ([1.0, math.inf], None, {}, "infinity"),
        (["x", "y"], None, {}, "must be numbers"),
        ([1.0, 2.0], None, {"confidence": 1.5}, "confidence"),
        ([1.0, 2.0], None, {"resamples": 0}, "resamples"),
    ],
)
def test_bootstrap_bad_input(values, subjects, kwargs, match):
    with pytest.raises(UsdenoiseError, match=match):
        bootstrap_ci(values, subjects, **kwargs)


# ---- paired_comparison -----------------------------------------------------------------


def test_paired_matches_scipy_wilcoxon_on_a_hand_made_case():
    # Two images per subject; per-subject differences are [0.5, -1, 2, 3.5, 4, 1.5, 6, -2.5].
    base = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8], dtype=float)
    shift = np.repeat([0.5, -1.0, 2.0, 3.5, 4.0, 1.5, 6.0, -2.5], 2)
    arm = base + shift
    subjects = np.repeat(np.arange(8), 2)
    res = paired_comparison(arm, base, subjects)
    d = np.array([0.5, -1.0, 2.0, 3.5, 4.0, 1.5, 6.0, -2.5])
    assert isinstance(res, Paired)
    assert res.p_value == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-12)
    assert res.p_value == pytest.approx(38 / 256, rel=1e-12)  # exact: 19 of 256 sign patterns
    assert res.mean_difference == pytest.approx(d.mean(), abs=1e-12)
    assert res.n_subjects == 8
    assert res.test == "wilcoxon signed-rank, two-sided"
    assert res.low < res.mean_difference < res.high
    ci = bootstrap_ci(d)  # same seed and resamples: the same interval
    assert (res.low, res.high) == (ci.low, ci.high)


def test_paired_exact_p_value_by_hand():
    # All 8 differences positive: the exact two-sided p is 2 / 2**8.
    base = np.zeros(8)
    arm = np.arange(1, 9) / 10
    res = paired_comparison(arm, base, list("abcdefgh"))
    assert res.p_value == pytest.approx(2 / 2**8, rel=1e-12)


def test_clear_shift_is_significant():
    rng = np.random.default_rng(4)
    base = rng.normal(0.85, 0.05, size=60)
    subjects = np.repeat(np.arange(20), 3)
    arm = base + 0.03 + rng.normal(0, 0.005, size=60)
    res = paired_comparison(arm, base, subjects)
    assert res.p_value < 0.01
    assert 0.025 < res.low < res.mean_difference < res.high < 0.035


def test_identical_arms_give_p_one_and_zero_difference():
    x = np.random.default_rng(6).random(12)
    res = paired_comparison(x, x.copy(), np.repeat(np.arange(6), 2))
    assert res.p_value == 1.0
    assert res.mean_difference == 0.0 and res.low == 0.0 and res.high == 0.0


def test_only_subjects_with_values_in_both_arms_are_compared():
    arm = [1.0, math.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    base = [0.0, 0.0, math.nan, 3.0, 4.0, 5.0, 6.0, 7.0]
    subjects = ["a", "b", "c", "d", "e", "f", "g", "h"]
    res = paired_comparison(arm, base, subjects)
    assert res.n_subjects == 6  # b missing in arm, c missing in baseline
    assert res.mean_difference == pytest.approx(1.0)


def test_few_subjects_are_flagged_underpowered_not_an_error():
    res = paired_comparison([1.0, 2.0, 3.0], [0.0, 0.5, 1.0], ["a", "b", "c"])
    assert "underpowered" in res.test and "3 subjects" in res.test
    assert res.p_value == pytest.approx(sps.wilcoxon([1.0, 1.5, 2.0]).pvalue)
    assert res.p_value > 0.05


def test_paired_bad_input():
    with pytest.raises(UsdenoiseError, match="arm has 3 values but baseline has 2"):
        paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0], [1, 2, 3])
    with pytest.raises(UsdenoiseError, match="3 values but 2 subject ids"):
        paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1, 2])
    with pytest.raises(UsdenoiseError, match="no subject has a value in both"):
        paired_comparison([1.0, math.nan], [math.nan, 2.0], ["a", "b"])


# ---- format_summary --------------------------------------------------------------------


def test_format_summary():
    assert format_summary(Summary(0.91234, 0.9011, 0.92349, 10, 0)) == "0.912 [0.901, 0.923]"
    assert format_summary(Summary(1.5, 1.25, 1.75, 3, 1), digits=1) == "1.5 [1.2, 1.8]"
    paired = Paired(-0.0123, -0.02, -0.004, 0.01, "wilcoxon", 8)
    assert format_summary(paired) == "-0.012 [-0.020, -0.004]"
