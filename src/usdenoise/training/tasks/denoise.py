"""The "denoise" training task: clean crop -> speckled input, the clean crop as target."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from usdenoise.checkpoint import load_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.denoise.network import default_weights_path
from usdenoise.losses import Loss, parse_loss
from usdenoise.metrics import psnr, ssim
from usdenoise.models import build_network
from usdenoise.noise import make_noise
from usdenoise.noise.level import (
    LEVEL_SCALE,
    TILE,
    added_level,
    correlated_noise,
    estimate_level,
    level_map,
    recorrupt,
)
from usdenoise.segmentation.pipeline import missing_masks
from usdenoise.training.config import TrainConfig
from usdenoise.training.distributed import World

#: `level_field`: the random field's range and grid cell (px)
FIELD_LOW, FIELD_HIGH, FIELD_CELL = 0.3, 3.0, 24


class DenoiseTask:
    """Clean crop -> speckled input; the target is the clean crop (with `target`
    "noise_free", the crop through the noise model's image formation without speckle).

    With `native` > 0 that share of the samples is trained on the speckle the image itself
    carries instead (recorruption, `TrainConfig.native`). A level-conditioned network
    (`level_input`) gets the level map as a second input channel: the level of the added
    speckle for training pairs, the level the input shows for recorrupted ones
    (`usdenoise.noise.level`).
    """

    name = "denoise"
    keys: tuple[str, ...] = ("image",)  # sample entries the loader keeps
    figures = ("psnr", "ssim")  # what `measure` returns, reported as val_<name>
    checkpoint_kind = "denoiser"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.noise = make_noise(config.noise)
        if config.target == "noise_free" and not hasattr(self.noise, "noise_free"):
            raise UsdenoiseError(f"target noise_free: noise {config.noise!r} has no noise-free "
                                 "image formation (only physics has: its PSF blur)")
        self.level_input = bool(config.model.get("level_input", False))
        self.levels_seen: list[float] = []  # min and max of the levels trained on

    def build_model(self) -> nn.Module:
        net = build_network(self.config.arch, self.config.preset, **self.config.model)
        if self.config.init is not None:
            self._init_from(net, self.config.init)
        return net

    def _init_from(self, net: nn.Module, init: str) -> None:
        """Fine-tuning: copy the weights of checkpoint `init` ("default": the shipped model)."""
        path = default_weights_path() if init == "default" else init
        source, sidecar = load_model(path, kind="denoiser")
        mine, theirs = getattr(net, "config", None), getattr(source, "config", None)
        if sidecar.get("arch") != self.config.arch or mine != theirs:
            raise UsdenoiseError(
                f"init {init}: checkpoint is {sidecar.get('arch')} {theirs}, but this run "
                f"builds {self.config.arch} {mine}; set arch, preset and model to match")
        net.load_state_dict(source.state_dict())

    def build_loss(self) -> nn.Module:
        """The loss; a term that takes the true mask (`task`) makes this run load masks."""
        loss = parse_loss(self.config.loss, vgg_weights=self.config.vgg_weights,
                          segmenter=self.config.segmenter)
        terms = [cast(Loss, term) for term in loss.terms]  # ModuleList items, typed
        if self.config.segmenter is not None and not any(
                "segmenter" in term.requires for term in terms):
            raise UsdenoiseError(f"--segmenter is only used by the task losses; loss "
                                 f"{self.config.loss!r} has none (e.g. l1+msssim+0.1*task)")
        if any("mask" in term.extra_inputs for term in terms):
            self.keys = ("image", "mask")
            self.mask_classes = max(getattr(t, "num_classes", 0) for t in terms)
        return loss

    def prepare_dataset(self, dataset: Any, indices: list[int]) -> Any:
        """With a mask-taking loss: every image must have a mask the segmenter can read."""
        if "mask" not in self.keys:
            return dataset
        return MaskedImages.check(dataset, indices, spec=self.config.data,
                                   num_classes=self.mask_classes)

    def loss_inputs(self, batch: dict[str, torch.Tensor], device: torch.device
                    ) -> dict[str, torch.Tensor]:
        """Batch entries the loss takes besides (output, target): the masks for `task`."""
        if "mask" not in self.keys:
            return {}
        return {"mask": batch["mask"].to(device, non_blocking=True)}

    def checkpoint_meta(self) -> dict[str, Any]:
        """Extra entries for the checkpoint's `meta`: the level scale and trained range."""
        if not self.level_input:
            return {}
        return {"level": {"scale": LEVEL_SCALE, "tile": TILE, "range": self.levels_seen or None}}

    def _with_level(self, noisy: torch.Tensor, level: torch.Tensor,
                    field: torch.Tensor | None = None) -> torch.Tensor:
        """`[noisy, level map]`: `level[B]` per image, times `field[B,1,H,W]` if given."""
        if field is not None:
            level = level.to(field.device, field.dtype).view(-1, 1, 1, 1) * field
        low, high = float(level.min()), float(level.max())
        seen = self.levels_seen
        self.levels_seen = [min(low, seen[0]), max(high, seen[1])] if seen else [low, high]
        return torch.cat([noisy, level_map(level, noisy)], dim=1)

    def _vary_level(self, clean: torch.Tensor, noisy: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`level_field`: that share of the samples gets its added speckle scaled by a smooth
        random field g in [FIELD_LOW, FIELD_HIGH] (log-uniform on a grid of FIELD_CELL px,
        bilinear), `clean + g·(noisy − clean)`, and its level map scaled by g; the others
        get g = 1. Returns (noisy, g `[B,1,H,W]`)."""
        b, (h, w) = clean.shape[0], clean.shape[-2:]
        draw = torch.rand(b, generator=generator, device=generator.device)
        coarse = torch.rand((b, 1, max(2, h // FIELD_CELL), max(2, w // FIELD_CELL)),
                            generator=generator, device=generator.device).to(clean.device)
        span = math.log(FIELD_HIGH / FIELD_LOW)
        field = F.interpolate(torch.exp(math.log(FIELD_LOW) + span * coarse), size=(h, w),
                              mode="bilinear", align_corners=False)
        vary = (draw < self.config.level_field).to(clean.device).view(-1, 1, 1, 1)
        field = torch.where(vary, field, torch.ones_like(field))
        return (clean + field * (noisy - clean)).clamp(0, 1), field

    def _zoom(self, clean: torch.Tensor, generator: torch.Generator
              ) -> tuple[torch.Tensor, bool]:
        """Half the batches (with `TrainConfig.zoom`) shrunk by a random factor per axis."""
        low = self.config.zoom
        if low is None:
            return clean, False
        u, axial, lateral = torch.rand(3, generator=generator, device=generator.device).tolist()
        if u >= 0.5:
            return clean, False
        # sides stay multiples of 8 so every U-Net level divides them evenly
        h, w = (max(16, round(n * (low + (1.0 - low) * f) / 8) * 8) for n, f in
                zip(clean.shape[-2:], (axial, lateral), strict=True))
        if (h, w) == tuple(clean.shape[-2:]):
            return clean, False
        return F.interpolate(clean, size=(h, w), mode="area"), True

    def _level(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The level a training pair is labelled with: added, or shown (`level_shown`)."""
        if self.config.level_shown:
            return estimate_level(noisy)
        return added_level(estimate_level(noisy), estimate_level(clean))

    def _target(self, clean: torch.Tensor) -> torch.Tensor:
        """What the network learns to output for speckle added to `clean`."""
        if self.config.target == "noise_free":
            return cast(Any, self.noise).noise_free(clean)
        return clean

    def _pairs(self, clean: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) for a global batch: added speckle, or recorrupted native speckle.

        A zoomed batch (finer grain than the scans' own) has no recorrupted samples: the
        native objective is learnt at the scale the speckle was estimated at.
        """
        clean, zoomed = self._zoom(clean, generator)
        noisy = self.noise(clean, generator=generator)
        target = self._target(clean)
        field = None
        if self.level_input:
            level = self._level(noisy, clean)
            if self.config.level_field > 0:  # drawn only then: runs without it reproduce
                noisy, field = self._vary_level(clean, noisy, generator)
        if self.config.native > 0:  # drawn only then: seeded runs without it reproduce
            draw = torch.rand(clean.shape[0], generator=generator, device=generator.device)
            native = (draw < self.config.native).to(clean.device) & (not zoomed)
        else:
            native = torch.zeros(clean.shape[0], dtype=torch.bool, device=clean.device)
        if bool(native.any()):
            c = self.config
            shown = estimate_level(clean[native])
            n = correlated_noise(tuple(clean[native].shape), axial=c.native_axial,
                                 lateral=c.native_lateral, generator=generator,
                                 device=clean.device) * shown.view(-1, 1, 1, 1)
            noisy, target = noisy.clone(), clean.clone()
            recorrupted, target[native] = recorrupt(clean[native], n, c.native_alpha)
            noisy[native] = recorrupted.clamp(0, 1)
            if self.level_input:
                level = level.clone()
                level[native] = estimate_level(noisy[native])
                if field is not None:  # recorrupted samples keep a constant map
                    field = field.clone()
                    field[native] = 1.0
        if self.level_input:
            noisy = self._with_level(noisy, level, field)
        return noisy, target

    def batch(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator, world: World
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Speckle for a training batch from the epoch's generator.

        Under DDP each process holds every world.size-th image of the global batch; it draws
        speckle for the whole global batch (placeholders elsewhere) and keeps its own rows,
        so the draws match a single process's exactly.
        """
        clean = batch["image"].to(generator.device, non_blocking=True)
        if world.size == 1:
            return self._pairs(clean, generator)
        full = torch.zeros((clean.shape[0] * world.size, *clean.shape[1:]), device=clean.device)
        full[world.rank :: world.size] = clean
        noisy, target = self._pairs(full, generator)
        return noisy[world.rank :: world.size], target[world.rank :: world.size]

    def validation_batch(
        self, batch: dict[str, torch.Tensor], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed speckle per validation image (seeded by its index): the same set every epoch."""
        clean = batch["image"].to(device, non_blocking=True)
        noisy = torch.empty_like(clean)
        for row, index in enumerate(batch["index"].tolist()):
            g = torch.Generator(device=device).manual_seed(
                derive_seed(self.config.seed, SeedPurpose.VALIDATION_NOISE, index))
            noisy[row : row + 1] = self.noise(clean[row : row + 1], generator=g)
        if self.level_input:
            noisy = self._with_level(noisy, self._level(noisy, clean))
        return noisy, self._target(clean)

    def measure(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image validation figures (Tensor[B] each)."""
        output = output.float().clamp(0, 1)
        return {"psnr": psnr(output, target), "ssim": ssim(output, target)}


class MaskedImages(Dataset):
    """Checks each sample's mask as it is loaded (a cheap check of all files comes first)."""

    def __init__(self, base: Any, spec: str, num_classes: int) -> None:
        self.base, self.spec, self.num_classes = base, spec, num_classes

    @classmethod
    def check(cls, dataset: Any, indices: list[int], *, spec: str,
              num_classes: int) -> MaskedImages:
        names = tuple(getattr(dataset, "class_names", ()))
        if num_classes and len(names) > num_classes:
            raise UsdenoiseError(f"{spec}: masks have {len(names)} classes ({', '.join(names)}),"
                                 f" but the segmenter predicts only {num_classes}")
        problem = missing_masks(dataset, indices)
        if problem:
            raise UsdenoiseError(f"{spec}: {problem}; the task loss needs every image annotated")
        checked = cls(dataset, spec, num_classes)
        checked[indices[0]]
        return checked

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[index]
        mask, source = sample.get("mask"), sample.get("source") or sample.get("id")
        if not isinstance(mask, torch.Tensor):
            raise UsdenoiseError(f"{self.spec}: {source} has no mask; the task loss needs "
                                 "every image annotated")
        if self.num_classes and mask.numel() and (
                int(mask.min()) < 0 or int(mask.max()) >= self.num_classes):
            raise UsdenoiseError(f"{self.spec}: {source}: mask holds class {int(mask.max())}, "
                                 f"but the segmenter predicts {self.num_classes} classes")
        return sample
