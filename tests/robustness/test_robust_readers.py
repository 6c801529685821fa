"""Catalogue rows for the readers (docs/robustness.md): `usdenoise denoise FILE --strict`.

Each row: exit 2 with one `usdenoise: error:` line that names the file (and the problem),
no traceback, nothing written -- or, for odd but valid images, exit 0 and one output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import robust_files as rf
from cli_helpers import run_cli

pytest.importorskip("pydicom")
pytest.importorskip("SimpleITK")

def _write(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


ERROR_ROWS = {
    # id: (builder, what the error line says besides the file name)
    "empty_png": (lambda d: _write(d, "e.png", b""), "empty"),
    "random_png": (lambda d: rf.random_bytes(d, ".png"), "PNG"),
    "random_jpg": (lambda d: rf.random_bytes(d, ".jpg"), "JPG"),
    "random_bmp": (lambda d: rf.random_bytes(d, ".bmp"), "BMP"),
    "random_tif": (lambda d: rf.random_bytes(d, ".tif"), "TIF"),
    "random_npy": (lambda d: rf.random_bytes(d, ".npy"), ".npy"),
    "random_dcm": (lambda d: rf.random_bytes(d, ".dcm"), "DICOM"),
    "random_mha": (lambda d: rf.random_bytes(d, ".mha"), "MetaImage"),
    "truncated_png": (lambda d: rf.truncated(d, ".png"), "PNG"),
    "truncated_jpg": (lambda d: rf.truncated(d, ".jpg"), "JPG"),
    "truncated_tif": (lambda d: rf.truncated(d, ".tif"), "TIF"),
    "truncated_npy": (lambda d: rf.truncated(d, ".npy"), "truncated"),
    "truncated_dcm": (lambda d: rf.truncated(d, ".dcm"), "DICOM"),
    "truncated_mha": (lambda d: rf.truncated(d, ".mha"), "MetaImage"),
    "lying_png_header": (rf.png_lying, "PNG"),
    "lying_mha_header": (rf.mha_short_data, "MetaImage"),
    "bomb_png": (rf.png_bomb, "limit of 50 megapixels"),
    "bomb_jpg": (rf.jpeg_bomb, "limit of 50 megapixels"),
    "bomb_bmp": (rf.bmp_bomb, "limit of 50 megapixels"),
    "bomb_tif": (rf.tiff_bomb, "limit of 50 megapixels"),
    "bomb_npy": (lambda d: rf.npy_header_only(d, (13_500, 13_500)), "limit of 50 megapixels"),
    "bomb_npy_cine": (lambda d: rf.npy_header_only(d, (3000, 1, 600, 600)), "per file"),
    "bomb_mha": (rf.mha_bomb, "limit of 50 megapixels"),
    "bomb_dcm": (lambda d: rf.dicom_sized(d, "big.dcm", Rows=13_500, Columns=13_500),
                 "limit of 50 megapixels"),
    "bomb_dcm_cine": (lambda d: rf.dicom_sized(d, "cine.dcm", Rows=1000, Columns=1000,
                                               NumberOfFrames=1000), "per file"),
    "tiny_1x1_png": (lambda d: rf.png(d, "one.png", 1, 1), "smaller than"),
    "tiny_2x3_png": (lambda d: rf.png(d, "two.png", 2, 3), "smaller than"),
    "nan_npy": (lambda d: rf.npy(d, np.full((8, 8), np.nan, np.float32)), "NaN/Inf"),
    "inf_npy": (lambda d: rf.npy(d, np.full((8, 8), np.inf, np.float32)), "NaN/Inf"),
    "float_out_of_range_npy": (lambda d: rf.npy(d, np.full((8, 8), 2.0, np.float32)),
                               "outside [0, 1]"),
    "object_npy": (lambda d: rf.npy(d, np.array([{"a": 1}] * 4, dtype=object)),
                   "dtype object"),
    "five_dim_npy": (lambda d: rf.npy(d, np.zeros((1, 1, 1, 8, 8), np.uint8)),
                     "not an image"),
    "dicom_without_pixels": (rf.dicom_without_pixels, "no pixel data"),
    "dicom_wrong_transfer_syntax": (rf.dicom_wrong_syntax, "corrupt"),
    "dicom_absurd_rows": (lambda d: rf.dicom_sized(d, "absurd.dcm", Rows=65535,
                                                   Columns=65535), "limit"),
    "dicom_without_rows": (rf.dicom_without_rows, "Rows missing"),
    "mhd_without_raw": (rf.mhd_without_raw, "MetaImage"),
    "mha_four_dims": (rf.mha_4d, "4-D"),
    "unsupported_suffix": (lambda d: _write(d, "a.gif", b"GIF89a"),
                           "unsupported format"),
    "missing_file": (lambda d: d / "absent.png", "no such file"),
}

OK_ROWS = {
    "png_16_bit": lambda d: rf.png(d, "deep.png", 24, 20, bits=16),
    "png_rgba": rf.rgba_png,
    "png_palette": rf.palette_png,
    "jpeg_cmyk": rf.cmyk_jpeg,
}


# rows that fail today where the fix lies in another engineer's files
XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("row", [pytest.param(r, marks=pytest.mark.xfail(
    strict=True, reason=XFAIL[r])) if r in XFAIL else r for r in sorted(ERROR_ROWS)])
def test_reader_row_fails_with_one_line(row: str, tmp_path: Path, capsys) -> None:
    build, says = ERROR_ROWS[row]
    source = tmp_path / "in"
    source.mkdir()
    path = build(source)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "denoise", path, "--out", out, "--method", "median",
                           "--strict")
    line = rf.one_error_line(err)
    assert code == 2
    assert path.name in line and says.lower() in line.lower(), line
    assert not out.exists() or not any(out.rglob("*.*")), "partial output left behind"


@pytest.mark.parametrize("row", sorted(OK_ROWS))
def test_reader_row_odd_but_valid(row: str, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in"
    source.mkdir()
    path = OK_ROWS[row](source)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "denoise", path, "--out", out, "--method", "median")
    assert code == 0, err
    assert "Traceback" not in err
    assert (out / path.name).is_file()


def test_reader_bomb_png_no_pillow_warning(tmp_path: Path) -> None:
    """A 12,000² PNG: our one-line error, and no DecompressionBombWarning anywhere."""
    import warnings

    from usdenoise.core.errors import UsdenoiseError
    from usdenoise.io import image_info

    path = rf.png_bomb(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UsdenoiseError, match="limit of 50 megapixels"):
            image_info(path)
