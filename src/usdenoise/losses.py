"""Training losses for denoisers, and the parser for combinations like "0.16*l1+0.84*msssim".

Every loss is an `nn.Module` called as `loss(pred, target) -> scalar tensor` on `[B,1,H,W]`
images in [0, 1]. All of them but `task` are 0 for identical images, positive otherwise,
differentiable, and *scale-aware*: they are means (independent of batch and image size) that
grow with the size of the error, on the fixed data range [0, 1].

- `l1`, `l2`: mean absolute / squared error.
- `ssim`: 1 - SSIM (Gaussian window sigma 1.5, 11 x 11, shrunk to the image on tiny inputs).
- `msssim`: 1 - MS-SSIM, via `usdenoise.metrics.ms_ssim`. Below 161 px on the smaller side
  five scales do not fit (pytorch-msssim refuses such images); there the largest number of
  scales m that fits is used, with the first m standard weights renormalised to sum to 1
  (m = 4 from 81 px, 3 from 41 px, 2 from 21 px, 1 = plain SSIM from 11 px; below 11 px the
  window shrinks).
- `perceptual`: mean squared difference of VGG16 features (relu1_2, relu2_2, relu3_3 by
  default), averaged over the layers; grayscale is repeated to 3 channels and ImageNet
  normalised. Needs a local VGG16 file (`vgg_weights=PATH`); nothing is downloaded.
- `task`, `taskperceptual` (task-aware losses, Liu et al., IJCAI 2018): through a frozen
  segmenter (`segmenter=` an `nn.Module`, or a run folder / .safetensors of kind
  "segmenter"). `task` is MONAI's Dice + cross-entropy of `segmenter(pred)` against the true
  mask (`mask=[B,H,W]` ints); it is not 0 for identical images, it measures how well the
  denoised image can still be segmented. `taskperceptual` is the mean squared difference of
  the segmenter's encoder features of pred and target (`models.segmenters.encoder_features`),
  averaged over levels; no ImageNet weights needed.

Registry design (`LOSSES`). Each class declares
  `requires`: names of resources `parse_loss` must hand to its constructor (the perceptual
      loss requires "vgg_weights"), taken from `parse_loss(..., **resources)`;
  `extra_inputs`: names of batch entries beyond (pred, target) that its `forward` takes as
      keyword arguments; `CombinedLoss.forward(pred, target, **batch)` passes each term only
      the entries it declares.
E.g. `parse_loss("l1+0.1*task", segmenter=net)` is called as `loss(pred, target, mask=mask)`.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.errors import UsdenoiseError, optional_import


class Loss(nn.Module):
    """Base class: `forward(pred, target, **extra) -> scalar`."""

    requires: ClassVar[tuple[str, ...]] = ()
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""


def _check(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise UsdenoiseError(
            f"loss {name}: pred and target must be [B, C, H, W] of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


class L1Loss(Loss):
    """Mean absolute error."""

    summary = "mean absolute error"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target, "l1")
        return (pred - target).abs().mean()


class L2Loss(Loss):
    """Mean squared error."""

    summary = "mean squared error"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target, "l2")
        return (pred - target).pow(2).mean()


class SSIMLoss(Loss):
    """1 - SSIM (Gaussian window, sigma 1.5, data range 1)."""

    summary = "1 - SSIM (Gaussian 11x11 window)"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from usdenoise.metrics import ssim

        _check(pred, target, "ssim")
        side = min(pred.shape[-2:])
        win = min(11, side if side % 2 else side - 1)
        return 1.0 - ssim(pred, target, data_range=1.0, win_size=win).mean()


class MSSSIMLoss(Loss):
    """1 - MS-SSIM; fewer scales (renormalised weights) under 161 px."""

    summary = "1 - MS-SSIM (fewer scales, renormalised weights, under 161 px)"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from usdenoise.metrics import ms_ssim

        _check(pred, target, "msssim")
        return 1.0 - ms_ssim(pred, target, data_range=1.0).mean()


class PerceptualLoss(Loss):
    """Mean squared difference of frozen VGG16 features (ImageNet weights from a local file)."""

    summary = "VGG16 feature distance (relu1_2, relu2_2, relu3_3); needs --vgg-weights"
    requires = ("vgg_weights",)

    def __init__(
        self,
        *,
        vgg_weights: str | os.PathLike[str] | None = None,
        layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3"),
    ) -> None:
        super().__init__()
        from usdenoise.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16Features

        self.vgg = VGG16Features(layers)
        self.vgg.load_weights(vgg_weights)  # type: ignore[arg-type]  (None -> clear error)
        self.vgg.eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # the feature extractor is frozen
        return self

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target, "perceptual")
        fp = self.vgg(self._prep(pred))
        with torch.no_grad():
            ft = self.vgg(self._prep(target))
        losses = [F.mse_loss(fp[k], ft[k]) for k in self.vgg.layers]
        return torch.stack(losses).mean()


def frozen_segmenter(resource: Any, *, loss: str) -> tuple[nn.Module, int]:
    """`segmenter=` resource (module, run folder or .safetensors) -> (frozen model in eval
    mode, number of classes). A module given is frozen in place."""
    if resource is None:
        raise UsdenoiseError(f"loss {loss}: needs a frozen segmenter: give --segmenter RUN")
    if isinstance(resource, nn.Module):
        model = resource
        classes = int(getattr(model, "config", {}).get("num_classes", 0))
    else:
        from usdenoise.segment import load_segmenter

        model, meta = load_segmenter(resource, option="--segmenter")
        classes = int(meta["config"].get("num_classes", 0))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, classes


class _SegmenterLoss(Loss):
    """Holds a frozen segmenter that stays in eval mode when the loss is put in train mode."""

    requires = ("segmenter",)

    def __init__(self, *, segmenter: Any = None) -> None:
        super().__init__()
        self.segmenter, self.num_classes = frozen_segmenter(segmenter, loss=self.name)

    def train(self, mode: bool = True) -> _SegmenterLoss:
        super().train(mode)
        self.segmenter.eval()  # frozen: BatchNorm keeps its running statistics
        return self


class TaskLoss(_SegmenterLoss):
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
        _check(pred, target, "task")
        if mask.ndim == 3:
            mask = mask[:, None]
        if mask.shape[0] != pred.shape[0] or mask.shape[-2:] != pred.shape[-2:]:
            raise UsdenoiseError(f"loss task: mask {tuple(mask.shape)} does not match the "
                                 f"images {tuple(pred.shape)}")
        return self.dice_ce(self.segmenter(pred).float(), mask.long())


class TaskPerceptualLoss(_SegmenterLoss):
    """Mean squared difference of the frozen segmenter's encoder features, over levels."""

    name = "taskperceptual"
    summary = "segmenter encoder feature distance (no ImageNet weights); needs --segmenter"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from usdenoise.models.segmenters import encoder_features

        _check(pred, target, "taskperceptual")
        fp = encoder_features(self.segmenter, pred)
        with torch.no_grad():
            ft = encoder_features(self.segmenter, target)
        return torch.stack([F.mse_loss(a, b) for a, b in zip(fp, ft, strict=True)]).mean()


#: name -> loss class; see the module docstring for `requires` / `extra_inputs`
LOSSES: dict[str, type[Loss]] = {
    "l1": L1Loss,
    "l2": L2Loss,
    "ssim": SSIMLoss,
    "msssim": MSSSIMLoss,
    "perceptual": PerceptualLoss,
    "task": TaskLoss,
    "taskperceptual": TaskPerceptualLoss,
}


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; `last_terms` keeps the latest value of each (for logs)."""

    def __init__(self, terms: list[tuple[float, str, Loss]]) -> None:
        super().__init__()
        self.weights = [w for w, _, _ in terms]
        self.names = [n for _, n, _ in terms]
        self.terms = nn.ModuleList(m for _, _, m in terms)
        self.spec = "+".join(f"{_fmt(w)}*{n}" if w != 1 else n for w, n, _ in terms)
        self.last_terms: dict[str, float] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **batch: Any) -> torch.Tensor:
        total = pred.new_zeros(())
        for w, name, term in zip(self.weights, self.names, self.terms, strict=True):
            extra = {}
            for key in term.extra_inputs:
                if key not in batch:
                    raise UsdenoiseError(f"loss {name}: needs {key!r} in the batch")
                extra[key] = batch[key]
            value = term(pred, target, **extra)
            self.last_terms[name] = float(value.detach())
            total = total + w * value
        return total

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


def _fmt(w: float) -> str:
    return f"{w:g}"


_TERM = re.compile(r"^(?:(?P<w>[^*]*)\*)?(?P<name>[^*]*)$")


def parse_loss(
    spec: str, *, vgg_weights: str | os.PathLike[str] | None = None, **resources: Any
) -> CombinedLoss:
    """`"0.16*l1+0.84*msssim"` -> a module computing the weighted sum of the named losses.

    Terms are `NAME` (weight 1) or `WEIGHT*NAME`, joined by `+`; spaces are ignored; each
    name at most once; weights positive and finite. Resources a term `requires`
    (`vgg_weights`, `segmenter`) are passed to its constructor.
    """
    text = str(spec).replace(" ", "")
    where = f"loss {spec!r}"
    if not text:
        raise UsdenoiseError(f"{where}: empty loss specification (e.g. l1+msssim)")
    resources = {"vgg_weights": vgg_weights, **resources}
    terms: list[tuple[float, str, Loss]] = []
    seen: set[str] = set()
    for i, part in enumerate(text.split("+")):
        if not part:
            pos = "at the start" if i == 0 else "after '+'"
            raise UsdenoiseError(f"{where}: missing term {pos}")
        m = _TERM.match(part)
        if m is None:
            raise UsdenoiseError(f"{where}: cannot parse term {part!r} (use WEIGHT*NAME)")
        wtext, name = m.group("w"), m.group("name").lower()
        if wtext is not None and not wtext:
            raise UsdenoiseError(f"{where}: missing weight before '*' in {part!r}")
        if not name:
            raise UsdenoiseError(f"{where}: missing loss name after '*' in {part!r}")
        weight = 1.0
        if wtext is not None:
            try:
                weight = float(wtext)
            except ValueError:
                raise UsdenoiseError(f"{where}: weight {wtext!r} is not a number") from None
            if not math.isfinite(weight) or weight <= 0:
                raise UsdenoiseError(f"{where}: weight {wtext!r} must be positive and finite")
        if name not in LOSSES:
            raise UsdenoiseError(
                f"{where}: unknown loss {name!r} (known: {', '.join(LOSSES)})"
            )
        if name in seen:
            raise UsdenoiseError(f"{where}: {name} appears twice")
        seen.add(name)
        cls = LOSSES[name]
        kwargs = {key: resources.get(key) for key in cls.requires}
        terms.append((weight, name, cls(**kwargs)))
    return CombinedLoss(terms)
