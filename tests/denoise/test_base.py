from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.base import Param
from usdenoise.denoise.registry import make_denoiser, parse_params


def test_identity_returns_input() -> None:
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(make_denoiser("noisy").denoise(x), x)


def test_unknown_method_and_parameter() -> None:
    with pytest.raises(UsdenoiseError, match="unknown method"):
        make_denoiser("nope")
    with pytest.raises(UsdenoiseError, match="unknown parameter"):
        make_denoiser("noisy", window=3)


def test_param_coercion_and_ranges() -> None:
    p = Param("window", 7, "window size", kind=int, low=3, high=31)
    assert p.coerce("9", owner="lee") == 9
    for bad in ["abc", "2", "40", "3.5", "nan"]:
        with pytest.raises(UsdenoiseError, match="lee: parameter window"):
            p.coerce(bad, owner="lee")
    flag = Param("log", True, "log domain", kind=bool)
    assert flag.coerce("false", owner="x") is False


def test_parse_params() -> None:
    assert parse_params(["a=1", "b = x"]) == {"a": "1", "b": "x"}
    with pytest.raises(UsdenoiseError):
        parse_params(["novalue"])


def test_wrong_shape_rejected() -> None:
    with pytest.raises(UsdenoiseError, match="expected a \\[B, 1, H, W\\]"):
        make_denoiser("noisy").denoise(torch.rand(8, 8))


# --- strength: alpha * denoised + (1 - alpha) * input, for every method -----------------------


def test_strength_blends_output_and_input_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 24, 24, generator=g)
    full = make_denoiser("median", window=5).denoise(x)
    half = make_denoiser("median", window=5, strength="0.25").denoise(x)
    torch.testing.assert_close(half, 0.25 * full + 0.75 * x, atol=1e-6, rtol=0)


def test_strength_zero_returns_input_and_one_the_method() -> None:
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(make_denoiser("lee", strength=0).denoise(x), x)
    torch.testing.assert_close(make_denoiser("lee", strength=1).denoise(x),
                               make_denoiser("lee").denoise(x))


def test_strength_is_reported_in_config_and_range_checked() -> None:
    d = make_denoiser("gaussian", sigma=2, strength=0.5)
    assert d.name == "gaussian" and d.config["strength"] == 0.5 and d.config["sigma"] == 2
    with pytest.raises(UsdenoiseError, match="strength: 1.5 is above the maximum"):
        make_denoiser("gaussian", strength=1.5)


def test_lower_strength_changes_the_image_less() -> None:
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    change = [float((make_denoiser("gaussian", sigma=2, strength=a).denoise(x) - x).abs().mean())
              for a in (0.0, 0.3, 0.6, 1.0)]
    assert change == sorted(change) and change[0] == 0.0
