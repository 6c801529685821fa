from __future__ import annotations

import pytest
import torch

from usdenoise.denoiser import Param
from usdenoise.denoisers import make_denoiser, parse_params
from usdenoise.errors import UsdenoiseError


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
