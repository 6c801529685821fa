"""Real DICOM files (pydicom's test data, the `pydicom-data` package in the test extra):
every one decodes through pydicom's own handlers and round-trips through `usdenoise denoise`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from usdenoise.cli.app import main
from usdenoise.core.errors import UsdenoiseError
from usdenoise.io import image_info, read_frames, write_dicom

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("data_store", reason="pip install pydicom-data (the test extra)")
from pydicom.data import get_testdata_file  # noqa: E402

torch.set_num_threads(1)

# name: (frames, height, width, lossy source)
FILES = {
    "US1_UNCR.dcm": (1, 480, 640, False),  # RGB ultrasound, uncompressed
    "US1_J2KR.dcm": (1, 480, 640, False),  # the same, JPEG 2000 lossless, YBR_RCT
    "US1_J2KI.dcm": (1, 480, 640, True),  # JPEG 2000 lossy, YBR_ICT
    "OBXXXX1A.dcm": (1, 600, 800, False),  # obstetric ultrasound, PALETTE COLOR
    "OBXXXX1A_2frame.dcm": (2, 600, 800, False),
    "OBXXXX1A_rle.dcm": (1, 600, 800, False),  # RLE Lossless
    "OBXXXX1A_rle_2frame.dcm": (2, 600, 800, False),
    "OBXXXX1A_expb.dcm": (1, 600, 800, False),  # big endian
    "SC_rgb_jpeg_dcmtk.dcm": (1, 100, 100, True),  # JPEG Baseline, YBR_FULL
    "SC_rgb_dcmtk_+eb+cy+np.dcm": (1, 100, 100, True),  # JPEG Baseline, YBR_FULL_422
    "SC_jpeg_no_color_transform.dcm": (1, 256, 256, True),  # JPEG Baseline, RGB
    "SC_rgb_jpeg_gdcm.dcm": (1, 100, 100, False),  # JPEG Lossless SV1, RGB
    "SC_ybr_full_422_uncompressed.dcm": (1, 100, 100, True),  # flagged lossy
    "JPEG2000.dcm": (1, 1024, 256, True),  # 16-bit signed gray, JPEG 2000
    "JPEG-LL.dcm": (1, 1024, 256, False),  # 16-bit signed gray, JPEG Lossless
    "emri_small_jpeg_2k_lossless.dcm": (10, 64, 64, False),  # 12-bit multi-frame
    "MR-SIEMENS-DICOM-WithOverlays.dcm": (1, 484, 484, False),  # with a window
    "examples_palette.dcm": None,  # palette example: checked by what it reports
}


def data_file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom-data")
    return Path(path)


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0)


@pytest.mark.parametrize("name", sorted(FILES))
def test_decodes(name: str) -> None:
    path = data_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # colour -> gray
        frames = read_frames(path)
    info = image_info(path)
    assert frames.dtype == torch.float32 and frames.shape[1] == 1
    assert frames.shape[0] == info.frames and frames.shape[2:] == (info.height, info.width)
    if FILES[name] is not None:
        assert (info.frames, info.height, info.width) == FILES[name][:3]
    assert 0 <= float(frames.min()) < float(frames.max()) <= 1


def test_jpeg2000_lossless_equals_the_uncompressed_file() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain = read_frames(data_file("US1_UNCR.dcm"), gray=False)
        j2kr = read_frames(data_file("US1_J2KR.dcm"), gray=False)
        j2ki = read_frames(data_file("US1_J2KI.dcm"), gray=False)
    assert plain.shape == (1, 3, 480, 640) and torch.equal(plain, j2kr)
    assert (plain - j2ki).abs().mean() < 2 / 255  # lossy, but the same picture


@pytest.mark.parametrize("name", sorted(FILES))
def test_round_trip_through_the_cli(name: str, tmp_path: Path) -> None:
    path = data_file(name)
    out = tmp_path / "out"
    # the identity method: what comes back must be the decoded input itself
    assert run_cli(["denoise", str(path), "--method", "noisy", "--out", str(out),
                    "--threads", "1"]) == 0
    written = out / path.name
    src, ds = pydicom.dcmread(path), pydicom.dcmread(written)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert int(ds.get("NumberOfFrames", 1)) == int(src.get("NumberOfFrames", 1) or 1)
    for keyword in ("RedPaletteColorLookupTableData", "RedPaletteColorLookupTableDescriptor",
                    "PaletteColorLookupTableUID", "RescaleSlope"):
        assert keyword not in ds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        before, after = read_frames(path), read_frames(written)
    bits = int(ds.BitsStored)
    assert (before - after).abs().max() <= 0.5 / (2**bits - 1) + 1e-6
    lossy = FILES[name][3] if FILES[name] is not None else None
    if lossy is not None:
        assert (ds.get("LossyImageCompression") == "01") == lossy
    # a real denoiser writes the same layout back
    out2 = tmp_path / "median"
    assert run_cli(["denoise", str(path), "--method", "mean", "--out", str(out2)]) == 0
    assert pydicom.dcmread(out2 / path.name).pixel_array.shape == ds.pixel_array.shape


def test_lossy_sources_stay_marked_lossy(tmp_path: Path) -> None:
    for name, method in [("US1_J2KI.dcm", "ISO_15444_1"), ("SC_rgb_jpeg_dcmtk.dcm",
                                                           "ISO_10918_1")]:
        path = data_file(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = write_dicom(tmp_path / name, read_frames(path), template=path)
        ds = pydicom.dcmread(out)
        assert ds.LossyImageCompression == "01"
        methods = ds.LossyImageCompressionMethod
        assert method in ([methods] if isinstance(methods, str) else list(methods))
    lossless = write_dicom(tmp_path / "r.dcm", read_frames(data_file("US1_J2KR.dcm")),
                           template=data_file("US1_J2KR.dcm"))
    assert pydicom.dcmread(lossless).get("LossyImageCompression") == "00"


def displayed(path: Path) -> np.ndarray:
    """What a viewer shows: modality LUT, then the (first) window, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    shown = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0).astype(float)
    shown = (shown - shown.min()) / max(np.ptp(shown), 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        shown = 1 - shown
    return shown


def test_window_of_a_real_file_is_kept(tmp_path: Path) -> None:
    path = data_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    out = write_dicom(tmp_path / "w.dcm", read_frames(path), template=path)
    src, ds = pydicom.dcmread(path), pydicom.dcmread(out)
    assert ds.WindowCenter == src.WindowCenter and ds.WindowWidth == src.WindowWidth
    assert np.abs(displayed(out) - displayed(path)).max() < 1e-3


@pytest.mark.parametrize("case", ["signed", "monochrome1", "rescaled"])
def test_window_is_converted_with_the_pixel_values(tmp_path: Path, case: str) -> None:
    """The written file looks the same in a viewer that applies the window."""
    from io_fixtures import write_dicom_file

    rng = np.random.default_rng(0)
    if case == "signed":
        a = rng.integers(-2000, 2000, size=(24, 20)).astype(np.int16)
        tags = {"WindowCenter": 100.0, "WindowWidth": 1500.0}
        path = write_dicom_file(tmp_path / "s.dcm", a, bits_stored=16, **tags)
    elif case == "monochrome1":
        a = rng.integers(0, 4096, size=(24, 20)).astype(np.uint16)
        path = write_dicom_file(tmp_path / "m1.dcm", a, bits_stored=12,
                                photometric="MONOCHROME1", WindowCenter=1500.0,
                                WindowWidth=2000.0)
    else:
        a = rng.integers(0, 4096, size=(24, 20)).astype(np.uint16)
        path = write_dicom_file(tmp_path / "r.dcm", a, bits_stored=12, RescaleSlope=0.5,
                                RescaleIntercept=10, WindowCenter=800.0, WindowWidth=900.0)
    out = write_dicom(tmp_path / "out.dcm", read_frames(path), template=path)
    ds = pydicom.dcmread(out)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and "WindowCenter" in ds
    assert np.abs(displayed(out) - displayed(path)).max() < 2e-3


def test_undecodable_syntax_is_one_clear_line(tmp_path: Path, capsys) -> None:
    """12-bit JPEG Extended needs a GPL decoder usdenoise does not install: every input
    failed is exit code 2, with the reason."""
    path = data_file("JPEG-lossy.dcm")
    try:
        read_frames(path)
    except UsdenoiseError as exc:
        assert "\n" not in str(exc) and "JPEG-lossy.dcm" in str(exc)
    else:
        pytest.skip("a decoder for 12-bit JPEG Extended is installed here")
    assert run_cli(["denoise", str(path), "--method", "noisy", "--out",
                    str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nothing denoised" in err and "JPEG-lossy.dcm" in err
    assert not (tmp_path / "out").exists()
