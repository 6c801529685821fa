from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    edge_epi,
    speckled,
    step,
    variance_ratio,
    window_loop,
)

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.enhanced_lee import EnhancedLee
from usdenoise.denoise.classic.mean import Mean


def enhanced_lee_reference(values: np.ndarray, centre: float, cu: float, k: float) -> float:
    m = values.mean()
    ci = values.std() / m
    cmax = math.sqrt(1.0 + 2.0 * cu * cu)
    if ci <= cu:
        return m
    if ci >= cmax:
        return centre
    w = math.exp(-k * (ci - cu) / (cmax - ci))
    return m * w + centre * (1.0 - w)


@pytest.mark.parametrize("damping", [0.5, 1.0, 3.0])
def test_matches_numpy_loop(damping: float) -> None:
    x = speckled(step(size=14, batch=1), 0.3, seed=0)
    x[0, 0, 3, 3] = 1.0  # a point target: Ci >= Cmax keeps it
    y = EnhancedLee(window=5, damping=damping, noise_cv=0.25).denoise(x)[0, 0].numpy()
    ref = window_loop(
        x[0, 0].numpy(), 5, lambda v, c: enhanced_lee_reference(v, c, 0.25, damping)
    )
    np.testing.assert_allclose(y, np.clip(ref, 0, 1), atol=1e-5)


def test_three_classes() -> None:
    # flat window -> mean; isolated bright point on black (Ci = 4.9 >= Cmax) -> kept
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 0.9
    assert float(EnhancedLee(window=5, noise_cv=0.3).denoise(x)[0, 0, 4, 4]) == pytest.approx(0.9)


def test_properties() -> None:
    check_constant(EnhancedLee())
    check_shape_and_range(EnhancedLee())
    check_batch_independent(EnhancedLee())
    assert variance_ratio(EnhancedLee()) < 0.2
    assert edge_epi(EnhancedLee()) > edge_epi(Mean(window=7)) + 0.2


@pytest.mark.parametrize("bad", [{"window": 6}, {"damping": -1.0}, {"damping": "big"}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="enhanced_lee: parameter"):
        EnhancedLee(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="enhanced_lee: image"):
        EnhancedLee().denoise(torch.rand(2, 1, 64, 5))
