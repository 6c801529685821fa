"""Image I/O: round trips, colour handling, scaling, and every kind of bad file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from io_fixtures import (
    colour,
    dicom_dataset,
    gradient,
    luma,
    write_dicom_file,
    write_jpeg2000_dicom,
    write_jpeg_dicom,
    write_jpeg_lossless_dicom,
    write_multipage_tiff,
    write_palette_png,
    write_pillow,
)

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import atomic_write
from usdenoise.io.common import IMAGE_SUFFIXES, ImageInfo
from usdenoise.io.dicom import write_dicom
from usdenoise.io.images import (
    image_info,
    read_frames,
    read_image,
    read_mask,
    read_raw,
    write_image,
    write_mask,
)


def one_line_error(exc_info: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc_info.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word.lower() in message.lower(), message


# ---------------------------------------------------------------------------- Pillow formats


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_gray8_round_trip_exact(tmp_path: Path, suffix: str) -> None:
    a = gradient(bits=8)
    x = torch.from_numpy(a / 255.0).float()[None]
    path = write_image(tmp_path / f"g{suffix}", x, bit_depth=8)
    assert np.array_equal(read_raw(path), a)
    y = read_image(path)
    assert y.dtype == torch.float32 and y.shape == (1, 12, 10)
    assert torch.equal(y, x)
    info = image_info(path)
    got = (info.bit_depth, info.height, info.width, info.channels, info.frames)
    assert got == (8, 12, 10, 1, 1)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_gray16_round_trip_exact(tmp_path: Path, suffix: str) -> None:
    a = gradient(bits=16)
    x = torch.from_numpy(a / 65535.0).float()[None]
    path = write_image(tmp_path / f"g{suffix}", x, bit_depth=16)
    raw = read_raw(path)
    assert raw.dtype == np.uint16 and np.array_equal(raw, a)
    assert torch.equal(read_image(path), x)
    assert image_info(path).bit_depth == 16


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16)])
def test_colour_round_trip_exact(tmp_path: Path, suffix: str, bits: int) -> None:
    a = colour(bits=bits)
    top = 255.0 if bits == 8 else 65535.0
    x = torch.from_numpy(np.moveaxis(a, -1, 0) / top).float()
    path = write_image(tmp_path / f"c{suffix}", x, bit_depth=bits)
    assert np.array_equal(read_raw(path), a)
    assert torch.equal(read_image(path, gray=False), x)
    info = image_info(path)
    assert (info.bit_depth, info.channels) == (bits, 3)


def test_16bit_is_scaled_by_65535_and_8bit_by_255(tmp_path: Path) -> None:
    a16 = np.array([[0, 1, 32768, 65535]], np.uint16)
    write_pillow(tmp_path / "a.png", a16)
    assert torch.allclose(read_image(tmp_path / "a.png")[0, 0],
                          torch.tensor([0, 1 / 65535, 32768 / 65535, 1.0]))
    a8 = np.array([[0, 1, 128, 255]], np.uint8)
    write_pillow(tmp_path / "b.png", a8)
    assert torch.allclose(read_image(tmp_path / "b.png")[0, 0],
                          torch.tensor([0, 1 / 255, 128 / 255, 1.0]))


def test_rgb_with_equal_planes_is_one_channel_without_warning(tmp_path: Path) -> None:
    a = gradient()
    path = write_pillow(tmp_path / "eq.png", np.stack([a, a, a], -1))
    assert image_info(path).channels == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = read_image(path)
    assert y.shape == (1, 12, 10)
    assert torch.equal(y[0], torch.from_numpy(a / 255.0).float())


def test_colour_becomes_luma_with_warning(tmp_path: Path) -> None:
    rgb = colour()
    path = write_pillow(tmp_path / "c.png", rgb)
    with pytest.warns(UserWarning, match="converted to gray"):
        y = read_image(path)
    assert y.shape == (1, 12, 10)
    np.testing.assert_allclose(y[0].numpy(), luma(rgb) / 255.0, atol=1e-6)
    # agrees with Pillow's own conversion within its integer rounding (1/255)
    from PIL import Image

    pil = np.asarray(Image.open(path).convert("L")) / 255.0
    np.testing.assert_allclose(y[0].numpy(), pil, atol=1.01 / 255)
    assert read_image(path, gray=False).shape == (3, 12, 10)


def test_rgba_alpha_is_dropped(tmp_path: Path) -> None:
    rgb = colour()
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    path = write_pillow(tmp_path / "a.png", np.concatenate([rgb, alpha], -1))
    assert image_info(path).channels == 4
    y = read_image(path, gray=False)
    assert torch.equal(y, torch.from_numpy(np.moveaxis(rgb, -1, 0) / 255.0).float())
    assert np.array_equal(read_raw(path), rgb)


def test_gray_alpha_is_dropped(tmp_path: Path) -> None:
    from PIL import Image

    a = gradient()
    Image.fromarray(np.stack([a, np.full_like(a, 9)], -1), mode="LA").save(tmp_path / "la.png")
    assert torch.equal(read_image(tmp_path / "la.png")[0], torch.from_numpy(a / 255.0).float())


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png_expands_to_colours(tmp_path: Path, transparent: bool) -> None:
    path, rgb = write_palette_png(tmp_path / "p.png", transparent=transparent)
    y = read_image(path, gray=False)
    assert torch.equal(y, torch.from_numpy(np.moveaxis(rgb, -1, 0) / 255.0).float())
    with pytest.warns(UserWarning):
        g = read_image(path)
    np.testing.assert_allclose(g[0].numpy(), luma(rgb) / 255.0, atol=1e-6)
    # read_raw / read_mask give the palette indices (label maps are often stored this way)
    index = (np.arange(120).reshape(12, 10) % 4)
    assert np.array_equal(read_raw(path), index)
    assert torch.equal(read_mask(path), torch.from_numpy(index))
    assert image_info(path).channels == (4 if transparent else 3)


def test_bilevel_image(tmp_path: Path) -> None:
    from PIL import Image

    a = gradient() > 127
    Image.fromarray(a).save(tmp_path / "b.png")
    assert torch.equal(read_image(tmp_path / "b.png")[0], torch.from_numpy(a).float())
    assert np.array_equal(read_raw(tmp_path / "b.png"), a.astype(np.uint8))


def test_jpeg_close_to_source(tmp_path: Path) -> None:
    # smooth content, quality 95: JPEG error stays small (measured max ~2/255)
    yy, xx = np.mgrid[0:32, 0:32]
    x = torch.from_numpy(((yy + xx) / 62.0)[None]).float()
    path = write_image(tmp_path / "s.jpg", x)
    assert (read_image(path) - x).abs().max() <= 4 / 255
    assert image_info(path).format == "JPEG"


def test_multipage_tiff_gives_frames(tmp_path: Path) -> None:
    frames = [gradient(seed=k) for k in range(3)]
    path = write_multipage_tiff(tmp_path / "cine.tif", frames)
    y = read_frames(path)
    assert y.shape == (3, 1, 12, 10)
    for k in range(3):
        assert torch.equal(y[k, 0], torch.from_numpy(frames[k] / 255.0).float())
    assert image_info(path).frames == 3
    with pytest.raises(UsdenoiseError, match="3 frames") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


def test_write_2d_input_and_clipping(tmp_path: Path) -> None:
    x = torch.tensor([[-0.5, 0.0], [1.0, 1.5]])
    path = write_image(tmp_path / "c.png", x)
    assert torch.equal(read_image(path)[0], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))


def test_image_info_fields(tmp_path: Path) -> None:
    path = write_image(tmp_path / "i.png", torch.rand(1, 5, 7), bit_depth=16)
    assert image_info(path) == ImageInfo("PNG", 16, 5, 7, 1, 1, None)


def test_suffixes_listed() -> None:
    for suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy"):
        assert suffix in IMAGE_SUFFIXES


# ---------------------------------------------------------------------------- .npy


def test_npy_float_round_trip(tmp_path: Path) -> None:
    x = torch.rand(1, 6, 5, generator=torch.Generator().manual_seed(0))
    path = write_image(tmp_path / "x.npy", x)
    assert np.load(path).dtype == np.float32
    assert torch.equal(read_image(path), x)
    assert image_info(path) == ImageInfo("NPY", 32, 6, 5, 1, 1, None)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_npy_integers_scaled_by_dtype_max(tmp_path: Path, dtype) -> None:
    top = np.iinfo(dtype).max
    a = np.array([[0, 1, top]], dtype)
    np.save(tmp_path / "a.npy", a)
    expected = torch.tensor([[[0.0, 1 / top, 1.0]]])
    assert torch.allclose(read_image(tmp_path / "a.npy"), expected)
    assert read_raw(tmp_path / "a.npy").dtype == dtype


def test_npy_shapes(tmp_path: Path) -> None:
    np.save(tmp_path / "chw.npy", np.zeros((3, 4, 5), np.float32))
    assert read_image(tmp_path / "chw.npy", gray=False).shape == (1, 4, 5)  # equal planes
    np.save(tmp_path / "fchw.npy", np.random.default_rng(0).random((2, 1, 4, 5)))
    assert read_frames(tmp_path / "fchw.npy").shape == (2, 1, 4, 5)
    np.save(tmp_path / "bad.npy", np.zeros((5, 2, 4, 4), np.float32))
    with pytest.raises(UsdenoiseError, match="not an image") as exc_info:
        read_image(tmp_path / "bad.npy")
    one_line_error(exc_info, tmp_path / "bad.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npy_nan_inf_rejected(tmp_path: Path, bad: float) -> None:
    a = np.zeros((4, 4), np.float32)
    a[1, 2] = bad
    path = tmp_path / "nan.npy"
    np.save(path, a)
    with pytest.raises(UsdenoiseError, match="NaN/Inf") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)
    with pytest.raises(UsdenoiseError, match="NaN/Inf"):
        read_raw(path)


def test_npy_float_out_of_range_rejected(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    np.save(path, np.array([[0.0, 2.0]]))
    with pytest.raises(UsdenoiseError, match="outside") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


def test_npy_negative_int_and_pickle_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "neg.npy", np.array([[-1, 3]], np.int16))
    with pytest.raises(UsdenoiseError, match="negative"):
        read_image(tmp_path / "neg.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsdenoiseError) as exc_info:
        read_image(tmp_path / "obj.npy")
    one_line_error(exc_info, tmp_path / "obj.npy")


# ---------------------------------------------------------------------------- masks


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy", ".bmp"])
def test_mask_round_trip(tmp_path: Path, suffix: str) -> None:
    m = torch.from_numpy(np.arange(30).reshape(5, 6) % 3)
    path = write_mask(tmp_path / f"m{suffix}", m)
    back = read_mask(path)
    assert back.dtype == torch.int64 and torch.equal(back, m)


def test_mask_16bit_labels(tmp_path: Path) -> None:
    m = torch.tensor([[0, 300], [65535, 2]])
    path = write_mask(tmp_path / "m.png", m)
    assert read_raw(path).dtype == np.uint16
    assert torch.equal(read_mask(path), m)


def test_mask_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match="lossless"):
        write_mask(tmp_path / "m.jpg", torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(UsdenoiseError, match="do not fit"):
        write_mask(tmp_path / "m.png", torch.tensor([[-1, 0]]))
    with pytest.raises(UsdenoiseError, match="non-integer"):
        write_mask(tmp_path / "m.png", torch.tensor([[0.5, 0.0]]))
    rgb = colour()
    write_pillow(tmp_path / "rgb.png", rgb)
    with pytest.raises(UsdenoiseError, match="colour masks") as exc_info:
        read_mask(tmp_path / "rgb.png")
    one_line_error(exc_info, tmp_path / "rgb.png")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


# ---------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(UsdenoiseError, match="not found") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    path.mkdir()
    for fn in (read_image, image_info, read_mask):
        with pytest.raises(UsdenoiseError, match="folder") as exc_info:
            fn(path)
        one_line_error(exc_info, path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".npy", ".bmp"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(UsdenoiseError, match="empty") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    path.write_bytes(b"GIF89a....")
    with pytest.raises(UsdenoiseError, match="unsupported format") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)
    with pytest.raises(UsdenoiseError, match="unsupported format"):
        write_image(tmp_path / "b.gif", torch.zeros(1, 2, 2))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp", ".npy"])
def test_garbage_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(UsdenoiseError) as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".jpg", 8),
                                         (".tif", 8), (".bmp", 8), (".npy", 8)])
def test_truncated_file(tmp_path: Path, suffix: str, bits: int) -> None:
    x = torch.rand(3 if suffix == ".png" and bits == 16 else 1, 64, 64,
                   generator=torch.Generator().manual_seed(1))
    good = write_image(tmp_path / f"good{suffix}", x, bit_depth=bits)
    data = good.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsdenoiseError) as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


# ---------------------------------------------------------------------------- writing


def test_atomic_write_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_write_removes_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_image_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    import usdenoise.io as io_module

    def broken(tmp, a, bit_depth, path, spacing_mm):
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setitem(io_module.WRITERS, ".png", broken)
    path = tmp_path / "x.png"
    with pytest.raises(UsdenoiseError, match="disk full") as exc_info:
        write_image(path, torch.zeros(1, 4, 4))
    one_line_error(exc_info, path)
    assert list(tmp_path.iterdir()) == []


def test_output_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = blocker / "out.png"
    with pytest.raises(UsdenoiseError, match="cannot create output folder") as exc_info:
        write_image(path, torch.zeros(1, 4, 4))
    one_line_error(exc_info, path)
    with pytest.raises(UsdenoiseError):
        write_mask(path, torch.zeros(4, 4, dtype=torch.int64))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_output_folder_not_writable(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UsdenoiseError, match="not writable") as exc_info:
            write_image(folder / "x.png", torch.zeros(1, 4, 4))
        one_line_error(exc_info, folder / "x.png")
    finally:
        folder.chmod(0o700)


def test_write_target_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UsdenoiseError, match="is a folder"):
        write_image(tmp_path / "x.png", torch.zeros(1, 4, 4))


def test_write_rejects_bad_values_and_shapes(tmp_path: Path) -> None:
    x = torch.zeros(1, 4, 4)
    x[0, 1, 1] = float("nan")
    with pytest.raises(UsdenoiseError, match="NaN/Inf"):
        write_image(tmp_path / "n.png", x)
    with pytest.raises(UsdenoiseError, match="shape"):
        write_image(tmp_path / "s.png", torch.zeros(2, 4, 4))
    with pytest.raises(UsdenoiseError, match="bit"):
        write_image(tmp_path / "j.jpg", torch.zeros(1, 4, 4), bit_depth=16)
    with pytest.raises(UsdenoiseError, match="bit_depth"):
        write_image(tmp_path / "b.png", torch.zeros(1, 4, 4), bit_depth=12)
    assert list(tmp_path.iterdir()) == []


def test_write_overwrites_existing(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    write_image(path, torch.zeros(1, 4, 4))
    write_image(path, torch.ones(1, 4, 4))
    assert torch.equal(read_image(path), torch.ones(1, 4, 4))


# ---------------------------------------------------------------------------- DICOM

pydicom = pytest.importorskip("pydicom")


def smooth_rgb(h: int = 32, w: int = 40) -> np.ndarray:
    """Smooth colour content, so JPEG error stays small and is due to the codec only."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = 40 + 150 * xx / (w - 1)
    g = 200 - 120 * yy / (h - 1)
    b = 90 + 60 * (xx + yy) / (h + w - 2)
    return np.round(np.stack([r, g, b], -1)).astype(np.uint8)


def test_dicom_8bit_gray_and_spacing(tmp_path: Path) -> None:
    a = gradient()
    path = write_dicom_file(tmp_path / "g.dcm", a, PixelSpacing=[0.2, 0.3])
    assert torch.equal(read_image(path)[0], torch.from_numpy(a / 255.0).float())
    assert np.array_equal(read_raw(path), a)
    assert image_info(path) == ImageInfo("DICOM", 8, 12, 10, 1, 1, (0.2, 0.3))


def test_dicom_16bit_scaled_by_stored_range(tmp_path: Path) -> None:
    a16 = gradient(bits=16)
    path = write_dicom_file(tmp_path / "g16.dcm", a16)
    assert torch.allclose(read_image(path)[0], torch.from_numpy(a16 / 65535.0).float())
    a12 = (a16 >> 4).astype(np.uint16)  # 12 bits stored in 16
    path = write_dicom_file(tmp_path / "g12.dcm", a12, bits_stored=12)
    assert image_info(path).bit_depth == 12
    y = read_image(path)[0]
    assert torch.allclose(y, torch.from_numpy(a12 / 4095.0).float())
    assert float(y.max()) == 1.0


def test_dicom_monochrome1_inverted(tmp_path: Path) -> None:
    a = np.array([[0, 55, 255]], np.uint8)
    path = write_dicom_file(tmp_path / "m1.dcm", a, photometric="MONOCHROME1")
    # hand computed: x = 1 - stored / 255 -> 1, 200/255, 0
    expected = torch.tensor([[[1.0, 200 / 255, 0.0]]])
    assert torch.allclose(read_image(path), expected, atol=1e-7)
    assert np.array_equal(read_raw(path), a)  # raw keeps stored values


def test_dicom_rescale_slope_intercept(tmp_path: Path) -> None:
    a = np.array([[0, 100, 200, 255]], np.uint8)
    path = write_dicom_file(tmp_path / "r.dcm", a, RescaleSlope=0.5, RescaleIntercept=10)
    # v = 0.5 * stored + 10, then / 255: 10/255, 60/255, 110/255, 137.5/255
    expected = torch.tensor([[[10, 60, 110, 137.5]]]) / 255
    assert torch.allclose(read_image(path), expected, atol=1e-7)
    path = write_dicom_file(tmp_path / "clip.dcm", a, RescaleSlope=2, RescaleIntercept=-20)
    with pytest.warns(UserWarning, match="clipped"):
        y = read_image(path)
    assert torch.allclose(y, torch.tensor([[[0.0, 180 / 255, 1.0, 1.0]]]), atol=1e-7)


def test_dicom_signed_pixels(tmp_path: Path) -> None:
    a = np.array([[-32768, 0, 32767]], np.int16)
    path = write_dicom_file(tmp_path / "s.dcm", a)
    assert torch.allclose(read_image(path), torch.tensor([[[0.0, 32768 / 65535, 1.0]]]))


def test_dicom_multiframe_cine(tmp_path: Path) -> None:
    cine = np.stack([gradient(seed=k) for k in range(5)])
    path = write_dicom_file(tmp_path / "cine.dcm", cine, FrameTime=33.3)
    y = read_frames(path)
    assert y.shape == (5, 1, 12, 10)
    assert torch.equal(y[3, 0], torch.from_numpy(cine[3] / 255.0).float())
    assert image_info(path).frames == 5
    with pytest.raises(UsdenoiseError, match="5 frames"):
        read_image(path)


def test_dicom_rgb_and_colour_cine(tmp_path: Path) -> None:
    rgb = colour()
    path = write_dicom_file(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    assert torch.equal(read_image(path, gray=False),
                       torch.from_numpy(np.moveaxis(rgb, -1, 0) / 255.0).float())
    with pytest.warns(UserWarning, match="gray"):
        y = read_image(path)
    np.testing.assert_allclose(y[0].numpy(), luma(rgb) / 255, atol=1e-6)
    cine = np.stack([rgb, rgb[::-1]])
    path = write_dicom_file(tmp_path / "rgbcine.dcm", cine, photometric="RGB")
    with pytest.warns(UserWarning):
        assert read_frames(path).shape == (2, 1, 12, 10)


@pytest.mark.parametrize("photometric", ["YBR_FULL", "YBR_FULL_422"])
def test_dicom_ybr_converted_to_luma(tmp_path: Path, photometric: str) -> None:
    rgb = smooth_rgb()
    ybr = pydicom.pixels.convert_color_space(rgb, "RGB", "YBR_FULL")
    if photometric == "YBR_FULL_422":  # uncompressed 4:2:2 stores shared Cb/Cr per pixel pair
        ybr[:, 1::2, 1:] = ybr[:, 0::2, 1:]
    ds = dicom_dataset(ybr, photometric="YBR_FULL", bits_stored=8)
    if photometric == "YBR_FULL_422":
        ds.PhotometricInterpretation = "YBR_FULL_422"
        packed = np.empty((rgb.shape[0], rgb.shape[1] // 2, 4), np.uint8)
        packed[..., 0], packed[..., 1] = ybr[:, 0::2, 0], ybr[:, 1::2, 0]
        packed[..., 2], packed[..., 3] = ybr[:, 0::2, 1], ybr[:, 0::2, 2]
        ds.PixelData = packed.tobytes()
    ds.save_as(tmp_path / "ybr.dcm", enforce_file_format=True)
    with pytest.warns(UserWarning, match="gray"):
        y = read_image(tmp_path / "ybr.dcm")[0].numpy()
    # The stored Y plane is the luma; YBR -> RGB -> luma adds rounding only: 1/255 tolerance.
    np.testing.assert_allclose(y, ybr[..., 0] / 255, atol=1 / 255)
    # and close to the luma of the RGB source (chroma subsampling does not change Y)
    np.testing.assert_allclose(y, luma(rgb) / 255, atol=1.5 / 255)


def test_dicom_jpeg_baseline_decodes(tmp_path: Path) -> None:
    rgb = smooth_rgb()
    path = write_jpeg_dicom(tmp_path / "jpeg.dcm", rgb, quality=95)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    with pytest.warns(UserWarning, match="gray"):
        y = read_image(path)[0].numpy()
    # quality 95 on smooth content: max error 4/255 against the source luma (measured ~2/255)
    assert np.abs(y - luma(rgb) / 255).max() <= 4 / 255
    gray = np.round(luma(rgb)).astype(np.uint8)
    path = write_jpeg_dicom(tmp_path / "jpeg_gray.dcm", gray, quality=95)
    assert np.abs(read_image(path)[0].numpy() - gray / 255).max() <= 4 / 255


def test_dicom_jpeg_lossless_decodes_exactly(tmp_path: Path) -> None:
    pytest.importorskip("gdcm")
    a12 = (gradient(bits=16) >> 4).astype(np.uint16)
    src = write_dicom_file(tmp_path / "src.dcm", a12, bits_stored=12)
    path = write_jpeg_lossless_dicom(src, tmp_path / "lossless.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
    assert np.array_equal(read_raw(path), a12)
    assert torch.equal(read_image(path), read_image(src))


def test_dicom_jpeg2000_lossless_decodes_exactly(tmp_path: Path) -> None:
    from PIL import features

    if not features.check("jpg_2000"):
        pytest.skip("Pillow built without OpenJPEG")
    a16 = gradient(bits=16)
    path = write_jpeg2000_dicom(tmp_path / "j2k.dcm", a16)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    assert np.array_equal(read_raw(path), a16)
    assert torch.allclose(read_image(path)[0], torch.from_numpy(a16 / 65535.0).float())


def test_dicom_ultrasound_region_spacing(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    region = Dataset()
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.015  # cm
    region.PhysicalDeltaY = 0.02
    path = write_dicom_file(tmp_path / "us.dcm", gradient(), SequenceOfUltrasoundRegions=[region])
    row, col = image_info(path).spacing_mm
    assert row == pytest.approx(0.2) and col == pytest.approx(0.15)


def test_dicom_without_suffix_is_recognised(tmp_path: Path) -> None:
    a = gradient()
    path = write_dicom_file(tmp_path / "IM_0001", a)
    assert torch.equal(read_image(path)[0], torch.from_numpy(a / 255.0).float())


@pytest.mark.parametrize("bits", [8, 16])
def test_write_dicom_round_trip(tmp_path: Path, bits: int) -> None:
    cine = np.stack([gradient(seed=k, bits=bits) for k in range(3)])
    template = write_dicom_file(tmp_path / "t.dcm", cine, FrameTime=40.0,
                                PixelSpacing=[0.1, 0.1], RescaleSlope=1, RescaleIntercept=0)
    frames = read_frames(template)
    out = write_dicom(tmp_path / "out" / "d.dcm", frames, template=template)
    src, ds = pydicom.dcmread(template), pydicom.dcmread(out)
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == "P001"
    assert ds.FrameTime == 40.0 and ds.NumberOfFrames == 3
    assert ds.BitsStored == bits and ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.ImageType[0] == "DERIVED"
    assert torch.equal(read_frames(out), frames)
    assert np.array_equal(read_raw_frames(out), cine)


def read_raw_frames(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def test_write_dicom_from_monochrome1_and_colour_templates(tmp_path: Path) -> None:
    a = np.array([[0, 55, 255]], np.uint8)
    m1 = write_dicom_file(tmp_path / "m1.dcm", a, photometric="MONOCHROME1")
    out = write_dicom(tmp_path / "m2.dcm", read_frames(m1), template=m1)
    assert pydicom.dcmread(out).PhotometricInterpretation == "MONOCHROME2"
    assert torch.allclose(read_image(out), read_image(m1))  # same appearance
    jpeg = write_jpeg_dicom(tmp_path / "j.dcm", smooth_rgb())
    with pytest.warns(UserWarning):
        gray = read_frames(jpeg)
    out = write_dicom(tmp_path / "jg.dcm", gray, template=jpeg)
    ds = pydicom.dcmread(out)
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel) == ("MONOCHROME2", 1)
    assert "PlanarConfiguration" not in ds and ds.LossyImageCompression == "01"
    assert torch.allclose(read_frames(out), gray, atol=0.5 / 255)


def test_write_dicom_bad_input(tmp_path: Path) -> None:
    template = write_dicom_file(tmp_path / "t.dcm", gradient())
    with pytest.raises(UsdenoiseError, match="shape"):
        write_dicom(tmp_path / "o.dcm", torch.zeros(2, 3, 12, 10), template=template)
    with pytest.raises(UsdenoiseError, match="NaN"):
        write_dicom(tmp_path / "o.dcm", torch.full((1, 1, 12, 10), float("nan")),
                    template=template)
    with pytest.raises(UsdenoiseError, match="not found"):
        write_dicom(tmp_path / "o.dcm", torch.zeros(1, 1, 12, 10), template=tmp_path / "no.dcm")
    with pytest.raises(UsdenoiseError, match="write_dicom"):
        write_image(tmp_path / "o.dcm", torch.zeros(1, 12, 10))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsdenoiseError, match="output folder"):
        write_dicom(blocker / "o.dcm", torch.zeros(1, 1, 12, 10), template=template)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "t.dcm"]


def test_failed_dicom_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    template = write_dicom_file(tmp_path / "t.dcm", gradient())

    def broken(self, filename, **kw):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", broken)
    with pytest.raises(UsdenoiseError, match="disk full"):
        write_dicom(tmp_path / "o.dcm", torch.zeros(1, 1, 12, 10), template=template)
    assert [p.name for p in tmp_path.iterdir()] == ["t.dcm"]


def test_dicom_bad_files(tmp_path: Path) -> None:
    good = write_dicom_file(tmp_path / "good.dcm", gradient(64, 64))
    data = good.read_bytes()
    cases = {
        "garbage.dcm": (b"not a dicom file" * 20, "not a DICOM"),
        "empty.dcm": (b"", "empty"),
        "cut_pixels.dcm": (data[: len(data) - 1000], "DICOM"),
        "cut_header.dcm": (data[:200], "DICOM"),
    }
    for name, (content, word) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UsdenoiseError, match=word) as exc_info:
            read_image(path)
        one_line_error(exc_info, path)


def test_dicom_without_pixels(tmp_path: Path) -> None:
    ds = dicom_dataset(gradient())
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(UsdenoiseError, match="no pixel data") as exc_info:
        read_image(tmp_path / "nopix.dcm")
    one_line_error(exc_info, tmp_path / "nopix.dcm")
    assert image_info(tmp_path / "nopix.dcm").height == 12


@pytest.mark.parametrize("case", ["no_end_marker", "garbage", "half"])
def test_dicom_corrupt_jpeg_stream(tmp_path: Path, case: str) -> None:
    from pydicom.encaps import encapsulate, generate_frames

    path = write_jpeg_dicom(tmp_path / "j.dcm", smooth_rgb())
    ds = pydicom.dcmread(path)
    good = next(generate_frames(ds.PixelData, number_of_frames=1))
    stream = {
        "no_end_marker": b"\xff\xd8\xff\xe0 this is no jpeg",  # hangs python-gdcm if passed on
        "garbage": b"\xff\xd8\xff\xe0 this is no jpeg\xff\xd9",
        "half": good[: len(good) // 2] + b"\xff\xd9",
    }[case]
    ds.PixelData = encapsulate([stream])
    ds.save_as(path, enforce_file_format=True)
    word = "missing JPEG start/end marker" if case == "no_end_marker" else "cannot decode"
    with pytest.raises(UsdenoiseError, match=word) as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


# ---------------------------------------------------------------------------- MetaImage

sitk = pytest.importorskip("SimpleITK")


def handmade_mha(path: Path, pixels: np.ndarray, header: str = "") -> Path:
    """A MetaImage written byte by byte (independent of SimpleITK's writer)."""
    h, w = pixels.shape
    text = (f"ObjectType = Image\nNDims = 2\nDimSize = {w} {h}\n{header}"
            "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    path.write_bytes(text.encode() + pixels.astype(np.uint8).tobytes())
    return path


def test_metaimage_handmade_file(tmp_path: Path) -> None:
    a = gradient()
    path = handmade_mha(tmp_path / "h.mha", a)
    assert torch.equal(read_image(path)[0], torch.from_numpy(a / 255.0).float())
    assert image_info(path) == ImageInfo("MetaImage", 8, 12, 10, 1, 1, None)
    path = handmade_mha(tmp_path / "s.mha", a, "ElementSpacing = 0.3 0.2\n")
    assert image_info(path).spacing_mm == (0.2, 0.3)  # (row, column); header is x y


@pytest.mark.parametrize("bits", [8, 16])
def test_metaimage_round_trip(tmp_path: Path, bits: int) -> None:
    a = gradient(bits=bits)
    x = torch.from_numpy(a / (255.0 if bits == 8 else 65535.0)).float()[None]
    path = write_image(tmp_path / "x.mha", x, bit_depth=bits, spacing_mm=(0.25, 0.5))
    assert np.array_equal(read_raw(path), a)
    assert torch.equal(read_image(path), x)
    info = image_info(path)
    assert (info.bit_depth, info.spacing_mm, info.height, info.width) == (bits, (0.25, 0.5), 12, 10)
    img = sitk.ReadImage(str(path))
    assert img.GetSpacing() == (0.5, 0.25)  # SimpleITK order is (x, y)


def test_metaimage_psfhs_three_equal_planes(tmp_path: Path) -> None:
    a = gradient()
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([a, a, a])), str(tmp_path / "p.mha"))
    info = image_info(tmp_path / "p.mha")
    assert (info.channels, info.frames) == (3, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = read_image(tmp_path / "p.mha")
    assert torch.equal(y, torch.from_numpy(a / 255.0).float()[None])
    vec = sitk.GetImageFromArray(np.stack([a, a, a], -1), isVector=True)
    sitk.WriteImage(vec, str(tmp_path / "v.mha"))
    assert torch.equal(read_image(tmp_path / "v.mha"), y)


def test_metaimage_colour_and_frames(tmp_path: Path) -> None:
    rgb = colour()
    x = torch.from_numpy(np.moveaxis(rgb, -1, 0) / 255.0).float()
    path = write_image(tmp_path / "c.mha", x)
    assert torch.equal(read_image(path, gray=False), x)
    with pytest.warns(UserWarning, match="gray"):
        assert read_image(path).shape == (1, 12, 10)
    volume = np.stack([gradient(seed=k) for k in range(5)])
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(tmp_path / "cine.mha"))
    assert read_frames(tmp_path / "cine.mha").shape == (5, 1, 12, 10)
    assert image_info(tmp_path / "cine.mha").frames == 5


def test_metaimage_mhd_with_raw_file(tmp_path: Path) -> None:
    a = gradient(bits=16)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "d.mhd"))
    assert (tmp_path / "d.raw").exists() or (tmp_path / "d.zraw").exists()
    assert torch.equal(read_image(tmp_path / "d.mhd")[0], torch.from_numpy(a / 65535.0).float())
    for data in tmp_path.glob("d.*raw"):
        data.unlink()
    with pytest.raises(UsdenoiseError, match="MetaImage") as exc_info:
        read_image(tmp_path / "d.mhd")
    one_line_error(exc_info, tmp_path / "d.mhd")
    with pytest.raises(UsdenoiseError, match=r"\.mha"):
        write_image(tmp_path / "o.mhd", torch.zeros(1, 4, 4))


def test_metaimage_mask(tmp_path: Path) -> None:
    m = torch.from_numpy(np.arange(30).reshape(5, 6) % 3)
    path = write_mask(tmp_path / "label.mha", m)
    assert torch.equal(read_mask(path), m)
    assert read_raw(path).dtype == np.uint8


def test_metaimage_float_pixels(tmp_path: Path) -> None:
    a = np.random.default_rng(0).random((6, 7)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "f.mha"))
    assert torch.equal(read_image(tmp_path / "f.mha")[0], torch.from_numpy(a))
    sitk.WriteImage(sitk.GetImageFromArray(a * 10), str(tmp_path / "big.mha"))
    with pytest.raises(UsdenoiseError, match="outside"):
        read_image(tmp_path / "big.mha")


def test_metaimage_bad_files(tmp_path: Path) -> None:
    good = handmade_mha(tmp_path / "good.mha", gradient(64, 64))
    data = good.read_bytes()
    cases = {"cut.mha": data[: len(data) // 2], "garbage.mha": b"no header here" * 20,
             "empty.mha": b""}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UsdenoiseError) as exc_info:
            read_image(path)
        one_line_error(exc_info, path)


# ---------------------------------------------------------------------------- environment


def test_unreadable_file(tmp_path: Path, monkeypatch) -> None:
    path = write_image(tmp_path / "x.png", torch.zeros(1, 4, 4))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == path
                        else real_access(p, mode, **kw))
    with pytest.raises(UsdenoiseError, match="permission denied") as exc_info:
        read_image(path)
    one_line_error(exc_info, path)


def test_output_folder_not_writable_reported(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder
                        else real_access(p, mode, **kw))
    path = folder / "x.png"
    with pytest.raises(UsdenoiseError, match="not writable") as exc_info:
        write_image(path, torch.zeros(1, 4, 4))
    one_line_error(exc_info, path)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("module,extra,suffix", [("pydicom", "dicom", ".dcm"),
                                                 ("SimpleITK", "mha", ".mha")])
def test_missing_extra_names_it(tmp_path: Path, monkeypatch, module: str, extra: str,
                                suffix: str) -> None:
    import sys

    from usdenoise.core.errors import MissingExtraError

    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"\0" * 200)
    monkeypatch.setitem(sys.modules, module, None)  # import now fails
    with pytest.raises(MissingExtraError, match=rf"usdenoise\[{extra}\]"):
        read_image(path)


def test_temp_files_get_ordinary_permissions(tmp_path) -> None:
    """Outputs must not inherit mkstemp's owner-only mode (0600)."""
    import os

    from usdenoise.io import make_temp_file

    umask = os.umask(0o022)
    try:
        path = make_temp_file(tmp_path)
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
