from __future__ import annotations

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
from usdenoise.denoise.classic.frost import Frost, distance_rings
from usdenoise.denoise.classic.mean import Mean


def frost_reference(values: np.ndarray, damping: float) -> float:
    """Direct per-pixel Frost: one exponential weight per window pixel."""
    w = values.shape[0]
    yy, xx = np.mgrid[: w, : w] - w // 2
    dist = np.sqrt(yy**2 + xx**2)
    a = damping * values.var() / values.mean() ** 2
    weights = np.exp(-a * dist)
    return float((weights * values).sum() / weights.sum())


@pytest.mark.parametrize(("window", "damping"), [(3, 1.0), (5, 1.0), (7, 4.0)])
def test_matches_direct_loop(window: int, damping: float) -> None:
    x = speckled(step(size=15, batch=1), 0.4, seed=0)
    y = Frost(window=window, damping=damping).denoise(x)[0, 0].numpy()
    ref = window_loop(x[0, 0].numpy(), window, lambda v, c: frost_reference(v, damping))
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_rings_cover_the_window() -> None:
    rings = distance_rings(7)
    assert len(rings) == 10
    assert sum(len(offsets) for _, offsets in rings) == 49


def test_properties() -> None:
    check_constant(Frost())
    check_shape_and_range(Frost())
    check_batch_independent(Frost())
    assert variance_ratio(Frost()) < 0.2
    assert edge_epi(Frost()) > edge_epi(Mean(window=5)) + 0.05
    # a stronger damping keeps the edge better
    assert edge_epi(Frost(damping=8.0)) > edge_epi(Frost()) + 0.1


@pytest.mark.parametrize("bad", [{"window": 4}, {"damping": -0.5}, {"damping": 1000}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="frost: parameter"):
        Frost(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="frost: image"):
        Frost().denoise(torch.rand(1, 1, 4, 4))
