"""Input processing for segmentation: speckle (seeded per image), then a denoiser, once per
image, and the data sets that carry the processed images with their checked masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.denoise.registry import make_denoiser
from usdenoise.noise.speckle import make_noise

NO_PROCESSING = (None, "", "none", "noisy")


class InputPipeline:
    """Speckle (`noise`, seeded per image index) then a denoiser (`denoise`, `params`)."""

    def __init__(self, *, noise: str | None = None, denoise: str | None = None,
                 params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.noise_spec = None if noise in NO_PROCESSING else str(noise)
        self.denoise_name = None if denoise in NO_PROCESSING else str(denoise)
        self.params = dict(params or {})
        self.seed = int(seed)
        self.noise = make_noise(self.noise_spec) if self.noise_spec else None
        self.denoiser = (make_denoiser(self.denoise_name, **self.params)
                         if self.denoise_name else None)

    @property
    def active(self) -> bool:
        return self.noise is not None or self.denoiser is not None

    @property
    def label(self) -> str:
        return self.denoise_name or "none"

    def describe(self) -> dict[str, Any]:
        return {"noise": self.noise_spec, "denoise": self.denoise_name,
                "denoise_params": self.params}

    def __call__(self, image: torch.Tensor, index: int) -> torch.Tensor:
        """`image[1,H,W]` -> processed `[1,H,W]`; the speckle depends on (seed, index) only."""
        x = image[None].float()
        if self.noise is not None:
            seed = derive_seed(self.seed, SeedPurpose.SEGMENT_INPUT_NOISE, int(index))
            g = torch.Generator().manual_seed(seed)
            x = self.noise(x, generator=g)
        if self.denoiser is not None:
            x = self.denoiser.denoise(x).cpu()
        return x[0]


def _sample_name(sample: dict[str, Any]) -> str:
    return str(sample.get("source") or sample.get("id") or "image")


def check_sample(sample: dict[str, Any], class_names: Sequence[str], *, what: str,
                 owner: str = "the model") -> None:
    """A sample must have a mask whose classes `owner` (the model, or the data set) knows."""
    if not isinstance(sample.get("mask"), torch.Tensor):
        raise UsdenoiseError(
            f"{_sample_name(sample)}: image {sample.get('id')!r} has no mask; {what} needs an "
            "annotated data set (hc18:, psfhs:, zenodo:, phantom or folder: with masks/)")
    top = int(sample["mask"].max()) if sample["mask"].numel() else 0
    if top >= len(class_names) or int(sample["mask"].min()) < 0:
        raise UsdenoiseError(
            f"{_sample_name(sample)}: mask holds class {top}, but {owner} has "
            f"{len(class_names)} classes ({', '.join(class_names)})")


class PreparedDataset(torch.utils.data.Dataset):
    """A data set whose images went through an `InputPipeline` (cached) and whose masks were
    checked against the model's classes."""

    def __init__(self, base: Any, pipeline: InputPipeline, class_names: Sequence[str]) -> None:
        self.base, self.pipeline, self.class_names = base, pipeline, tuple(class_names)
        self.images: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.base)

    def prepare(self, indices: Sequence[int]) -> None:
        for index in indices:
            self[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.base[index])
        check_sample(sample, self.class_names, what="segment train")
        if self.pipeline.active:
            if index not in self.images:
                self.images[index] = self.pipeline(sample["image"], index)
            sample["image"] = self.images[index]
        return sample


def missing_masks(dataset: Any, indices: Sequence[int]) -> str | None:
    """'PATH: image has no mask (and N more)' for file data sets with unannotated images
    among `indices` (known without decoding any), else None."""
    items = getattr(dataset, "items", None)
    if not items:
        return None
    missing = [items[i] for i in indices if getattr(items[i], "mask", "") is None]
    if not missing:
        return None
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"{missing[0].image}: image has no mask{more}"
