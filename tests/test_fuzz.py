"""Property tests (Hypothesis), bounded so they stay fast: `EXAMPLES` in total.

* every reader, per suffix, on random bytes and on mutated (bit-flipped, truncated) valid
  files: nothing but a UsdenoiseError ever comes out;
* the loss and noise-spec parsers on arbitrary text: a module or a UsdenoiseError;
* the image metrics on valid input: never NaN;
* the speckle models: output in [0, 1], and the same output for the same seeded generator.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "robustness"))
import robust_files as rf  # noqa: E402

from usdenoise.core.errors import UsdenoiseError  # noqa: E402
from usdenoise.io import image_info, read_frames  # noqa: E402

pytest.importorskip("pydicom")
pytest.importorskip("SimpleITK")

SUFFIXES = (".png", ".jpg", ".bmp", ".tif", ".npy", ".dcm", ".mha")
READER_EXAMPLES = 12
PARSER_EXAMPLES = 60
MODEL_EXAMPLES = 20
EXAMPLES = (len(SUFFIXES) * 2 * READER_EXAMPLES + 2 * PARSER_EXAMPLES + 2 * MODEL_EXAMPLES)
FAST = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.too_slow]}

_WORK = Path(tempfile.mkdtemp(prefix="usdenoise-fuzz-"))
_VALID = {s: rf.make_valid(_WORK, s, name=f"valid{s}", h=16, w=12).read_bytes()
          for s in SUFFIXES}


def _read_only_usdenoise_errors(data: bytes, suffix: str) -> None:
    path = _WORK / f"case{suffix}"
    path.write_bytes(data)
    for reader in (image_info, read_frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reader(path)
            except UsdenoiseError as exc:
                assert "\n" not in str(exc)


@pytest.mark.parametrize("suffix", SUFFIXES)
@settings(max_examples=READER_EXAMPLES, **FAST)
@given(data=st.binary(min_size=0, max_size=600))
def test_fuzz_reader_random_bytes(suffix: str, data: bytes) -> None:
    _read_only_usdenoise_errors(data, suffix)


@pytest.mark.parametrize("suffix", SUFFIXES)
@settings(max_examples=READER_EXAMPLES, **FAST)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       keep=st.floats(0.05, 1.0))
def test_fuzz_reader_mutated_valid(suffix: str, flips: list[tuple[int, int]],
                                   keep: float) -> None:
    data = bytearray(_VALID[suffix])
    for at, value in flips:
        data[at % len(data)] = value
    _read_only_usdenoise_errors(bytes(data[: max(1, int(len(data) * keep))]), suffix)


SPEC_TEXT = st.text(alphabet="l1msimpercptualdcegnoryh0123456789.*+:-|_ ,x", max_size=24)


@settings(max_examples=PARSER_EXAMPLES, **FAST)
@given(spec=st.one_of(SPEC_TEXT, st.text(max_size=16)))
def test_fuzz_parse_loss(spec: str) -> None:
    from usdenoise.losses import parse_loss

    try:
        parse_loss(spec)
    except UsdenoiseError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=PARSER_EXAMPLES, **FAST)
@given(spec=st.one_of(SPEC_TEXT, st.text(max_size=16)))
def test_fuzz_make_noise(spec: str) -> None:
    from usdenoise.noise import make_noise

    try:
        make_noise(spec)
    except UsdenoiseError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=MODEL_EXAMPLES, **FAST)
@given(seed=st.integers(0, 2**31 - 1), flat=st.booleans())
def test_fuzz_metrics_finite_on_valid_input(seed: int, flat: bool) -> None:
    from usdenoise.metrics import psnr, ssim

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, 16, 16, generator=g)
    y = torch.full_like(x, 0.5) if flat else torch.rand(1, 1, 16, 16, generator=g)
    for metric in (psnr, ssim):
        assert not torch.isnan(metric(y, x)).any()
    assert not torch.isnan(psnr(x, x)).any()


NOISE_SPECS = ("rayleigh:0.25", "gamma:4", "gaussian:0.1", "uniform:0.2", "rayleigh:0.1-0.75")


@settings(max_examples=MODEL_EXAMPLES, **FAST)
@given(seed=st.integers(0, 2**31 - 1), spec=st.sampled_from(NOISE_SPECS),
       level=st.floats(0.0, 1.0))
def test_fuzz_speckle_range_and_determinism(seed: int, spec: str, level: float) -> None:
    from usdenoise.noise import add_speckle

    x = torch.full((1, 1, 12, 12), level)
    a = add_speckle(x, spec, generator=torch.Generator().manual_seed(seed))
    b = add_speckle(x, spec, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0 and not torch.isnan(a).any()
