"""The "segment" training task: a segmenter, Dice + cross-entropy (MONAI `DiceCELoss`,
softmax over one-hot classes), validation Dice (foreground mean; a crop where a class is
absent from both counts 1).

Optional input processing (`InputPipeline`): speckle added with a seed per image, then a
denoiser, applied once per image before training and kept in memory, so every epoch sees
the same processed images. A caller that processed the images itself passes its own
`pipeline`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError, optional_import
from usdenoise.data import load_dataset
from usdenoise.metrics.segmentation import batch_foreground_dice
from usdenoise.models.segmenters import build_segmenter
from usdenoise.segmentation.pipeline import InputPipeline, PreparedDataset, missing_masks

SEGMENT_LOSSES = ("dice+ce", "dice", "ce")


class SegmentTask:
    """Image -> class map; Dice + cross-entropy; validation Dice (foreground mean)."""

    name = "segment"
    keys = ("image", "mask")
    figures = ("dice",)
    checkpoint_kind = "segmenter"

    def __init__(self, config: Any, *, pipeline: Any = None) -> None:
        self.config = config
        dataset = load_dataset(config.data, size=config.image_size)
        self.class_names = tuple(str(n) for n in dataset.class_names)
        if config.num_classes is not None and config.num_classes != len(self.class_names):
            raise UsdenoiseError(
                f"{config.data}: masks have {len(self.class_names)} classes "
                f"({', '.join(self.class_names)}), but num_classes is {config.num_classes}")
        if "num_classes" in config.model or "in_channels" in config.model:
            raise UsdenoiseError("segment: set the number of classes with num_classes "
                                 "(--num-classes), not as a model option")
        if config.loss not in SEGMENT_LOSSES:
            raise UsdenoiseError(f"segment: loss {config.loss!r} is not one of "
                                 f"{list(SEGMENT_LOSSES)}")
        # a caller that processed the images itself (the study) passes its own pipeline
        self.pipeline = pipeline or InputPipeline(noise=config.noise, denoise=config.denoise,
                                                  params=config.denoise_params, seed=config.seed)

    def build_model(self) -> nn.Module:
        return build_segmenter(self.config.arch, self.config.preset,
                               num_classes=len(self.class_names), **self.config.model)

    def build_loss(self) -> nn.Module:
        losses = optional_import("monai.losses", extra="seg")
        lambda_dice = 0.0 if self.config.loss == "ce" else 1.0
        lambda_ce = 0.0 if self.config.loss == "dice" else 1.0
        return losses.DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=lambda_dice,
                                 lambda_ce=lambda_ce)

    def prepare_dataset(self, dataset: Any, indices: list[int]) -> Any:
        """Check masks, then speckle/denoise the train and validation images once."""
        problem = missing_masks(dataset, indices)
        if problem:
            raise UsdenoiseError(f"{problem}; segment train needs every image annotated")
        prepared = PreparedDataset(dataset, self.pipeline, self.class_names)
        if self.pipeline.active:
            prepared.prepare(indices)
        return prepared

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names), "num_classes": len(self.class_names),
                "image_size": self.config.image_size, "inputs": self.pipeline.describe()}

    def batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator, world: Any
              ) -> tuple[torch.Tensor, torch.Tensor]:
        device = generator.device
        return (batch["image"].to(device, non_blocking=True),
                batch["mask"].to(device, non_blocking=True)[:, None])

    def validation_batch(self, batch: dict[str, torch.Tensor], device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch["image"].to(device, non_blocking=True),
                batch["mask"].to(device, non_blocking=True)[:, None])

    def loss_inputs(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
        return {}  # the mask is already the target

    def measure(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean foreground Dice per image; a crop where a class is absent from both counts 1."""
        dice = batch_foreground_dice(output.argmax(1), target[:, 0], output.shape[1], empty=1.0)
        return {"dice": dice}
