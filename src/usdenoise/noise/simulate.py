"""`usdenoise simulate`: write clean/noisy/mask triplets that other tools pair by id."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import (
    check_output_outside,
    input_folders,
    safe_child,
    staged_dir,
    write_text_atomic,
)
from usdenoise.core.limits import check_pixels
from usdenoise.core.progress import track
from usdenoise.data import load_dataset
from usdenoise.io import write_image, write_mask
from usdenoise.noise.speckle import make_noise


def simulate(
    data: str,
    *,
    noise: str,
    out_dir: Path,
    size: int | None = 256,
    seed: int = 0,
    limit: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Add seeded speckle to every image of a data set; returns the manifest.

    Writes `clean/<id>.png`, `noisy/<id>.png`, `masks/<id>.png` (when masks exist) and
    `manifest.json`. Everything goes to a staging folder first, so a failure leaves nothing.
    """

    out_dir = Path(out_dir)
    noise_model = make_noise(noise)  # bad spec fails before any file is touched
    if size is not None and size < 0:
        raise UsdenoiseError(f"--size {size}: must be 0 (keep the size) or more")
    if size:
        check_pixels(f"--size {size}", size, size)  # the one pixel limit, before any work
    if limit is not None and limit < 1:
        raise UsdenoiseError(f"--limit {limit}: must be at least 1")
    check_output_outside(out_dir, input_folders(data))  # never into the user's own data
    if out_dir.exists() and not out_dir.is_dir():
        raise UsdenoiseError(f"--out {out_dir}: is a file, not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UsdenoiseError(f"{out_dir}: folder is not empty (use --overwrite)")
    dataset = load_dataset(data, size=size)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    entries = []
    # --overwrite removes only what an earlier run listed in its marker, never other files
    with staged_dir(out_dir, command="simulate", overwrite=overwrite or None) as staging:
        for sub in ("clean", "noisy", "masks"):
            (staging / sub).mkdir()
        for index in track(range(count), total=count, description="simulate"):
            sample = dataset[index]
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
            # draw() reports the level each image got: a range spec draws one per image
            noisy_batch, drawn = noise_model.draw(sample["image"][None].float(),
                                                  generator=generator)
            noisy = noisy_batch[0]
            noise_name, level = drawn[0]
            image_id = sample["id"]
            name = f"{image_id}.png"  # ids come from the data: keep them inside the folders
            write_image(safe_child(staging / "clean", name), sample["image"])
            write_image(safe_child(staging / "noisy", name), noisy)
            if sample.get("mask") is not None:
                write_mask(safe_child(staging / "masks", name), sample["mask"])
            entries.append({
                "id": image_id, "subject": sample["subject"], "source": sample.get("source"),
                "noise": noise_name, "level": level, "seed": seed, "index": index,
                "spacing_mm": sample.get("spacing_mm"), "hc_mm": sample.get("hc_mm"),
            })
        if not any((staging / "masks").iterdir()):
            (staging / "masks").rmdir()
        manifest = {"data": data, "noise": noise, "seed": seed, "size": size, "images": entries}
        write_text_atomic(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
