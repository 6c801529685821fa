from __future__ import annotations

import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    edge_epi,
    variance_ratio,
)
from scipy.ndimage import median_filter

import usdenoise.denoise.classic.median as median_module
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.mean import Mean
from usdenoise.denoise.classic.median import Median


@pytest.mark.parametrize("window", [3, 5, 7])
def test_matches_scipy_exactly(window: int) -> None:
    x = torch.rand(2, 1, 21, 17, generator=torch.Generator().manual_seed(0))
    y = Median(window=window).denoise(x).numpy()
    ref = median_filter(x.numpy(), size=(1, 1, window, window), mode="mirror")
    np.testing.assert_array_equal(y, ref)


def test_row_chunks_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 1, 30, 20, generator=torch.Generator().manual_seed(1))
    whole = Median().denoise(x)
    monkeypatch.setattr(median_module, "_CHUNK_VALUES", 25 * 20 * 4)  # 4 rows per chunk
    assert torch.equal(Median().denoise(x), whole)


def test_properties() -> None:
    check_constant(Median())
    check_shape_and_range(Median())
    check_batch_independent(Median())
    assert variance_ratio(Median()) < 0.2
    assert edge_epi(Median()) > edge_epi(Mean(window=5)) + 0.2


@pytest.mark.parametrize("bad", [{"window": 6}, {"window": 33}, {"window": 0}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="median: parameter window"):
        Median(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="median: image"):
        Median(window=9).denoise(torch.rand(1, 1, 40, 8))
