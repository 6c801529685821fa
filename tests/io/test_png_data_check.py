"""The PNG image-data check: a PNG whose data inflates to less than its header declares is
refused (Pillow would fill the missing rows with black); every valid layout passes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usdenoise.core.errors import UsdenoiseError
from usdenoise.io import read_image
from usdenoise.io.pillow import _ADAM7, _png_expected_bytes, check_png_data


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png(width: int, height: int, raw: bytes, *, bits: int = 8, colour: int = 0,
         interlace: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _inflated(path: Path) -> int:
    data, at, stream = path.read_bytes(), 8, b""
    while at < len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind == b"IDAT":
            stream += data[at + 8:at + 8 + length]
        at += 12 + length
    return len(zlib.decompress(stream))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_every_pillow_layout_inflates_to_exactly_the_expected_bytes(mode: str,
                                                                    tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (7, 13), dtype=np.uint16))
    elif mode == "1":
        img = Image.fromarray(rng.integers(0, 2, (7, 13), dtype=np.uint8) * 255).convert("1")
    else:
        img = Image.fromarray(rng.integers(0, 255, (7, 13, 4), dtype=np.uint8)).convert(mode)
    path = tmp_path / "x.png"
    img.save(path)
    data = path.read_bytes()
    expected = _png_expected_bytes(13, 7, data[24], data[25], data[28])
    assert expected == _inflated(path)
    check_png_data(path)


def test_image_data_over_many_chunks_after_a_text_chunk_passes(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    noise = np.random.default_rng(1).integers(0, 255, (600, 700), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 5000)
    path = tmp_path / "big.png"
    Image.fromarray(noise).save(path, pnginfo=info)
    assert path.read_bytes().count(b"IDAT") > 1  # Pillow splits the data into chunks
    assert _png_expected_bytes(700, 600, 8, 0, 0) == _inflated(path)
    check_png_data(path)
    cut = tmp_path / "cut.png"  # the last chunks gone, the IEND kept: a lying file
    data = path.read_bytes()
    first = data.index(b"IDAT") - 4
    length = int.from_bytes(data[first:first + 4], "big")
    cut.write_bytes(data[:first + 12 + length] + data[data.index(b"IEND") - 4:])
    with pytest.raises(UsdenoiseError, match="PNG image data ends early"):
        check_png_data(cut)


def test_an_interlaced_png_passes_and_decodes_as_built(tmp_path: Path) -> None:
    width, height = 13, 7
    image = (np.arange(width * height, dtype=np.uint8).reshape(height, width) * 3)
    raw = b""
    for x0, y0, dx, dy in _ADAM7:  # Adam7 passes, each row behind a filter byte 0
        part = image[y0::dy, x0::dx]
        if part.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in part)
    path = tmp_path / "adam7.png"
    path.write_bytes(_png(width, height, raw, interlace=1))
    assert _png_expected_bytes(width, height, 8, 0, 1) == len(raw)
    check_png_data(path)
    assert np.array_equal(np.asarray(Image.open(path)), image)  # the layout Pillow reads
    assert read_image(path).shape == (1, height, width)


def test_data_that_ends_early_is_one_line_naming_the_file(tmp_path: Path) -> None:
    rows = b"".join(b"\x00" + bytes(range(20)) for _ in range(10))
    path = tmp_path / "short.png"
    path.write_bytes(_png(20, 16, rows))  # 10 of 16 rows
    with pytest.raises(UsdenoiseError, match=r"short\.png: PNG image data ends early \(210 of "
                                             r"the 336 bytes its 20 x 16 header"):
        read_image(path)
    whole = b"".join(b"\x00" + bytes(range(20)) for _ in range(16))
    path.write_bytes(_png(20, 16, whole))
    assert read_image(path).shape == (1, 16, 20)
