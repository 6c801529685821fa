"""Each codec module on its own (io.common, io.pillow, io.npy, io.metaimage, io.images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.io.common import check_input_file, full_scale, quantize
from usdenoise.io.images import READERS, WRITERS, decode, write_image
from usdenoise.io.metaimage import read_metaimage
from usdenoise.io.npy import npy_to_fhwc, read_npy
from usdenoise.io.pillow import read_pillow


def test_full_scale_and_quantize() -> None:
    a, scale = full_scale(np.array([[0, 65535]], np.uint16), Path("x"))
    assert scale == 65535.0 and a.dtype == np.uint16
    with pytest.raises(UsdenoiseError, match="outside \\[0, 1\\]; scale them first"):
        full_scale(np.array([[0.0, 2.0]], np.float32), Path("x"))
    q = quantize(np.array([0.0, 0.5, 1.0]), 8)
    assert q.tolist() == [0, 128, 255] and q.dtype == np.uint8
    assert quantize(np.array([1.0]), 16).tolist() == [65535]


def test_check_input_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UsdenoiseError, match="empty.png: file is empty"):
        check_input_file(tmp_path / "empty.png")
    with pytest.raises(UsdenoiseError, match="file not found"):
        check_input_file(tmp_path / "none.png")


def test_every_suffix_has_a_reader_and_a_writer() -> None:
    assert set(READERS) == set(WRITERS)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy", ".mha"])
def test_round_trip_through_each_codec(tmp_path: Path, suffix: str) -> None:
    pixels = (np.arange(48, dtype=np.float32).reshape(1, 6, 8) / 47.0)
    path = write_image(tmp_path / f"x{suffix}", pixels, bit_depth=16 if suffix != ".npy" else 8)
    reader = {".png": read_pillow, ".tif": read_pillow, ".npy": read_npy,
              ".mha": read_metaimage}[suffix]
    direct = reader(path, raw=False, header_only=False)
    via_dispatch = decode(path)
    assert direct.pixels.shape == via_dispatch.pixels.shape == (1, 6, 8, 1)
    back = direct.pixels[0, ..., 0] / direct.full_scale
    np.testing.assert_allclose(back, pixels[0], atol=1 / 65535 + 1e-6)


def test_npy_layouts() -> None:
    assert npy_to_fhwc(np.zeros((5, 7)), Path("a.npy")).shape == (1, 5, 7, 1)
    assert npy_to_fhwc(np.zeros((1, 5, 7)), Path("a.npy")).shape == (1, 5, 7, 1)
