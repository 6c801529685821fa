"""Odd files for the robustness catalogue (docs/robustness.md), written in a temporary folder.

Every builder takes the folder and returns the path to give the command. Bombs are written
by hand (a header that declares a huge image and almost no data), so they stay a few bytes.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from io_fixtures import gradient, write_dicom_file, write_palette_png, write_pillow

BOMB = 12_000  # 12,000 x 12,000 = 144 megapixels, over the 50-megapixel limit


def one_error_line(err: str) -> str:
    """The single `usdenoise: error:` line of stderr (asserting it is the only line)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("usdenoise: error: "), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- images


def png(folder: Path, name: str = "a.png", h: int = 12, w: int = 10, **kw) -> Path:
    return write_pillow(folder / name, gradient(h, w, **kw))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(folder: Path, side: int = BOMB) -> Path:
    """A valid-looking PNG whose IHDR declares side x side gray pixels (a few dozen bytes)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    body = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(
        b"IEND", b"")
    path = folder / "bomb.png"
    path.write_bytes(body)
    return path


def png_lying(folder: Path) -> Path:
    """IHDR says 3000 x 3000, the data holds one row: a decode error, not a crash."""
    ihdr = struct.pack(">IIBBBBB", 3000, 3000, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 3001)
    path = folder / "lying.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(folder: Path) -> Path:
    """A small JPEG whose SOF0 height and width are patched to 12,000."""
    path = write_pillow(folder / "bomb.jpg", gradient(16, 16))
    data = bytearray(path.read_bytes())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", BOMB, BOMB)
    path.write_bytes(bytes(data))
    return path


def bmp_bomb(folder: Path) -> Path:
    path = write_pillow(folder / "bomb.bmp", gradient(8, 8))
    data = bytearray(path.read_bytes())
    data[18:26] = struct.pack("<ii", BOMB, BOMB)
    path.write_bytes(bytes(data))
    return path


def tiff_bomb(folder: Path) -> Path:
    """A hand-written little-endian TIFF: one strip, declared 12,000 x 12,000 gray."""
    entries = [(256, 4, 1, BOMB), (257, 4, 1, BOMB), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 200), (277, 3, 1, 1), (278, 4, 1, BOMB),
               (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                 else struct.pack("<I", value))
        for tag, kind, count, value in entries) + struct.pack("<I", 0)
    body = b"II*\x00" + struct.pack("<I", 8) + ifd
    body += b"\x00" * (200 - len(body)) + b"\x00" * 16
    path = folder / "bomb.tif"
    path.write_bytes(body)
    return path


def truncated(folder: Path, suffix: str) -> Path:
    """A valid small file of the format, cut to 60 % of its bytes."""
    source = make_valid(folder, suffix, name=f"whole{suffix}")
    data = source.read_bytes()
    path = folder / f"cut{suffix}"
    path.write_bytes(data[: max(1, int(len(data) * 0.6))])
    source.unlink()
    return path


def make_valid(folder: Path, suffix: str, name: str | None = None, h: int = 24,
               w: int = 20) -> Path:
    """A small valid image file of each readable suffix."""
    path = folder / (name or f"ok{suffix}")
    if suffix in (".png", ".jpg", ".bmp", ".tif"):
        return write_pillow(path, gradient(h, w))
    if suffix == ".npy":
        np.save(path, gradient(h, w))
        return path
    if suffix == ".dcm":
        return write_dicom_file(path, gradient(h, w))
    if suffix == ".mha":
        import SimpleITK as sitk

        sitk.WriteImage(sitk.GetImageFromArray(gradient(h, w)), str(path), True)
        return path
    raise ValueError(suffix)


def random_bytes(folder: Path, suffix: str, size: int = 700) -> Path:
    path = folder / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(len(suffix)).integers(0, 256, size, np.uint8)
                     .tobytes())
    return path


def npy(folder: Path, array: np.ndarray, name: str = "a.npy") -> Path:
    path = folder / name
    np.save(path, array, allow_pickle=array.dtype.hasobject)
    return path


def npy_header_only(folder: Path, shape: tuple[int, ...], name: str = "bomb.npy") -> Path:
    """A .npy whose header declares `shape` of uint8 and which holds 16 bytes of data."""
    path = folder / name
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
        fh.write(b"\x00" * 16)
    return path


def mha_text(folder: Path, name: str, header: dict[str, str], data: bytes = b"") -> Path:
    path = folder / name
    text = "".join(f"{k} = {v}\n" for k, v in header.items())
    path.write_bytes(text.encode() + data)
    return path


def mha_bomb(folder: Path) -> Path:
    """177 KB of zlib data behind a header that declares 13,500 x 13,500 uint8 pixels."""
    data = zlib.compress(b"\x00" * 1) + b"\x00" * 177_000
    return mha_text(folder, "bomb.mha", {
        "ObjectType": "Image", "NDims": "2", "DimSize": "13500 13500",
        "ElementType": "MET_UCHAR", "CompressedData": "True",
        "CompressedDataSize": str(len(data)), "ElementDataFile": "LOCAL"}, data)


def mhd_without_raw(folder: Path) -> Path:
    return mha_text(folder, "scan.mhd", {
        "ObjectType": "Image", "NDims": "2", "DimSize": "10 12",
        "ElementType": "MET_UCHAR", "ElementDataFile": "scan.raw"})


def mha_4d(folder: Path) -> Path:
    return mha_text(folder, "vol4.mha", {
        "ObjectType": "Image", "NDims": "4", "DimSize": "2 2 2 2",
        "ElementType": "MET_UCHAR", "ElementDataFile": "LOCAL"}, b"\x00" * 16)


def mha_short_data(folder: Path) -> Path:
    return mha_text(folder, "short.mha", {
        "ObjectType": "Image", "NDims": "2", "DimSize": "64 64",
        "ElementType": "MET_UCHAR", "ElementDataFile": "LOCAL"}, b"\x00" * 100)


def dicom(folder: Path, name: str = "a.dcm", **tags) -> Path:
    return write_dicom_file(folder / name, gradient(24, 20), **tags)


def dicom_without_pixels(folder: Path) -> Path:
    import pydicom

    path = dicom(folder, "nopix.dcm")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_wrong_syntax(folder: Path) -> Path:
    """Uncompressed pixels under a file meta that claims JPEG Baseline."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    path = dicom(folder, "syntax.dcm")
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([bytes(ds.PixelData)])  # raw pixels where JPEG should be
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_sized(folder: Path, name: str, **tags) -> Path:
    """A small DICOM whose Rows/Columns/NumberOfFrames are then set to `tags`."""
    import pydicom

    path = dicom(folder, name)
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_without_rows(folder: Path) -> Path:
    import pydicom

    path = dicom(folder, "norows.dcm")
    ds = pydicom.dcmread(path)
    del ds.Rows
    ds.save_as(path, enforce_file_format=True)
    return path


def palette_png(folder: Path) -> Path:
    return write_palette_png(folder / "palette.png")[0]


def cmyk_jpeg(folder: Path) -> Path:
    from PIL import Image

    path = folder / "cmyk.jpg"
    Image.fromarray(np.stack([gradient(24, 20)] * 3, -1)).convert("CMYK").save(path)
    return path


def rgba_png(folder: Path) -> Path:
    a = np.stack([gradient(24, 20)] * 3 + [np.full((24, 20), 200, np.uint8)], -1)
    return write_pillow(folder / "rgba.png", a)


# ---------------------------------------------------------------------------- checkpoints


def checkpoint(folder: Path, arch: str = "dncnn", **config) -> Path:
    """A tiny trained-looking checkpoint (`folder/model.safetensors` + `.json`)."""
    from usdenoise.checkpoint import save_model
    from usdenoise.models import build_network

    net = build_network(arch, **config)
    return save_model(folder / "model", net, arch=arch, arch_config=net.config)


def edit_sidecar(weights: Path, **changes) -> Path:
    sidecar = weights.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data.update(changes)
    sidecar.write_text(json.dumps(data))
    return weights


def safetensors_liar(folder: Path) -> Path:
    """A header declaring one F32 tensor of 6,000,000 x 6,000,000 (144 TB), 8 bytes of data."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [6_000_000, 6_000_000],
                               "data_offsets": [0, 144_000_000_000_000]}}).encode()
    path = folder / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 8)
    path.with_suffix(".json").write_text(json.dumps({
        "format": "usdenoise-checkpoint", "format_version": 1, "kind": "denoiser",
        "arch": "dncnn", "config": {}, "weights": "model.safetensors"}))
    return path


class Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "executed"))


def malicious_pickle(folder: Path, marker: Path, name: str = "model.pth") -> Path:
    import pickle

    path = folder / name
    path.write_bytes(pickle.dumps({"state_dict": Evil(marker)}))
    path.with_suffix(".json").write_text(json.dumps({
        "format": "usdenoise-checkpoint", "format_version": 1, "kind": "denoiser",
        "arch": "dncnn", "config": {}}))
    return path
