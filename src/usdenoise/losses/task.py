"""Task-aware losses (Liu et al., IJCAI 2018) through a frozen segmenter (see
`usdenoise.losses`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.checkpoint import load_segmenter
from usdenoise.core.errors import UsdenoiseError, optional_import
from usdenoise.losses.image import Loss, check_pair
from usdenoise.models.segmenters import encoder_features


def frozen_segmenter(resource: Any, *, loss: str) -> tuple[nn.Module, int]:
    """`segmenter=` resource (module, run folder or .safetensors) -> (frozen model in eval
    mode, number of classes). A module given is frozen in place."""
    if resource is None:
        raise UsdenoiseError(f"loss {loss}: needs a frozen segmenter: give --segmenter RUN")
    if isinstance(resource, nn.Module):
        model = resource
        classes = int(getattr(model, "config", {}).get("num_classes", 0))
    else:
        model, meta = load_segmenter(resource, option="--segmenter")
        classes = int(meta["config"].get("num_classes", 0))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, classes


class SegmenterLoss(Loss):
    """Holds a frozen segmenter that stays in eval mode when the loss is put in train mode."""

    requires = ("segmenter",)
    name: ClassVar[str]  # set by each subclass

    def __init__(self, *, segmenter: Any = None) -> None:
        super().__init__()
        self.segmenter, self.num_classes = frozen_segmenter(segmenter, loss=self.name)

    def train(self, mode: bool = True) -> SegmenterLoss:
        super().train(mode)
        self.segmenter.eval()  # frozen: BatchNorm keeps its running statistics
        return self


class TaskLoss(SegmenterLoss):
    """Dice + cross-entropy (MONAI DiceCELoss) of the frozen segmenter on pred vs the mask."""

    name = "task"
    summary = "Dice+CE of a frozen segmenter on the output vs the mask; needs --segmenter"
    extra_inputs = ("mask",)

    def __init__(self, *, segmenter: Any = None) -> None:
        super().__init__(segmenter=segmenter)
        losses = optional_import("monai.losses", extra="seg")
        self.dice_ce = losses.DiceCELoss(to_onehot_y=True, softmax=True)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *,
                mask: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "task")
        if mask.ndim == 3:
            mask = mask[:, None]
        if mask.shape[0] != pred.shape[0] or mask.shape[-2:] != pred.shape[-2:]:
            raise UsdenoiseError(f"loss task: mask {tuple(mask.shape)} does not match the "
                                 f"images {tuple(pred.shape)}")
        return self.dice_ce(self.segmenter(pred).float(), mask.long())


class TaskPerceptualLoss(SegmenterLoss):
    """Mean squared difference of the frozen segmenter's encoder features, over levels."""

    name = "taskperceptual"
    summary = "segmenter encoder feature distance (no ImageNet weights); needs --segmenter"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "taskperceptual")
        fp = encoder_features(self.segmenter, pred)
        with torch.no_grad():
            ft = encoder_features(self.segmenter, target)
        return torch.stack([F.mse_loss(a, b) for a, b in zip(fp, ft, strict=True)]).mean()


#: name -> loss class; see the module docstring for `requires` / `extra_inputs`
