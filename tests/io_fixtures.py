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
