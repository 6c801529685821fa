"""Helpers that generate small test images in a temporary folder (no binary fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def gradient(h: int = 12, w: int = 10, *, bits: int = 8, seed: int = 0) -> np.ndarray:
    """A deterministic [H, W] image that uses the whole range of the bit depth."""
    rng = np.random.default_rng(seed)
    top = 255 if bits == 8 else 65535
    a = rng.integers(0, top + 1, size=(h, w))
    a.flat[0], a.flat[-1] = 0, top
    return a.astype(np.uint8 if bits == 8 else np.uint16)


def colour(h: int = 12, w: int = 10, *, bits: int = 8, seed: int = 1) -> np.ndarray:
    """A deterministic [H, W, 3] image whose planes differ."""
    return np.stack([gradient(h, w, bits=bits, seed=seed + k) for k in range(3)], axis=-1)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an [..., 3] array, float64."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def write_pillow(path: Path, array: np.ndarray, **options) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path, **options)
    return path


def write_palette_png(path: Path, *, transparent: bool = False) -> tuple[Path, np.ndarray]:
    """A palette PNG with 4 colours; returns the path and the expected RGB image."""
    from PIL import Image

    table = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [40, 40, 40]], np.uint8)
    index = (np.arange(12 * 10).reshape(12, 10) % 4).astype(np.uint8)
    img = Image.fromarray(index, mode="P")
    img.putpalette(table.flatten().tolist())
    options = {"transparency": 0} if transparent else {}
    img.save(path, **options)
    return path, table[index]


def write_multipage_tiff(path: Path, frames: list[np.ndarray]) -> Path:
    from PIL import Image

    pages = [Image.fromarray(f) for f in frames]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path


# ---------------------------------------------------------------------------- DICOM


def dicom_dataset(pixels: np.ndarray, *, photometric: str = "MONOCHROME2",
                  bits_stored: int | None = None, **tags):
    """A minimal ultrasound DICOM dataset holding ``pixels`` ([H,W], [F,H,W] or [...,3])."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = pydicom.uid.UltrasoundImageStorage
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "P001"
    ds.Modality = "US"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if bits_stored is None:
        bits_stored = pixels.dtype.itemsize * 8
    ds.set_pixel_data(pixels, photometric, bits_stored)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def write_dicom_file(path: Path, pixels: np.ndarray, **kw) -> Path:
    dicom_dataset(pixels, **kw).save_as(path, enforce_file_format=True)
    return path


def write_jpeg_dicom(path: Path, image: np.ndarray, *, quality: int = 95) -> Path:
    """JPEG Baseline DICOM: a Pillow-encoded JPEG encapsulated with pydicom.encaps.

    ``image`` is [H, W] uint8 (MONOCHROME2) or [H, W, 3] uint8 RGB (stored YBR_FULL_422).
    """
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=1)
    colour = image.ndim == 3
    ds = dicom_dataset(image, photometric="RGB" if colour else "MONOCHROME2", bits_stored=8)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    if colour:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpeg_lossless_dicom(src: Path, dst: Path) -> Path:
    """Re-encode an uncompressed DICOM as JPEG Lossless (process 14, SV1) with python-gdcm."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise RuntimeError(f"gdcm could not read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError("gdcm could not compress")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"gdcm could not write {dst}")
    return dst


def write_jpeg2000_dicom(path: Path, image: np.ndarray) -> Path:
    """JPEG 2000 Lossless DICOM from a Pillow-encoded (reversible) J2K codestream."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    ds = dicom_dataset(image)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(path, enforce_file_format=True)
    return path
