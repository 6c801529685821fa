"""Segmentation: training task, prediction, per-class metrics and head circumference.

Training goes through the one `train.fit()` loop: `SegmentTask` (task "segment") builds a
segmenter (`models.segmenters.SEGMENTERS`), the Dice + cross-entropy loss (MONAI
`DiceCELoss`, softmax over one-hot classes), turns a batch into (image, mask) and reports
the validation Dice. Optional input processing (`InputPipeline`): speckle added with a seed
per image (`noise`), then a denoiser (`denoise`), applied once per image before training and
kept in memory, so every epoch sees the same processed images.

Evaluation (`evaluate_segmenter`) loads every image at its own size, resizes it to the size
the model was trained at, applies the same input processing, predicts by argmax and brings
the predicted class map back to the image's size by nearest neighbour (masks are never
interpolated). Per image and class: Dice, IoU, HD95 (MONAI, 95th percentile of the symmetric
surface distances; mm where the pixel size is known), area bias (predicted area / true area
- 1; positive means regions drawn too large) and the head circumference: an ellipse
(`cv2.fitEllipse`) fitted, in mm coordinates, to the pixel-edge border of the largest
connected head region, Ramanujan's perimeter, absolute difference to the reference HC.

A model evaluated on a data set with other class names (HC18's head on PSFHS's fetal head)
is measured on the classes matched by name (`usdenoise.class_mapping`); data classes without
a counterpart count as background, and the notes say so.

Conventions: Dice/IoU/HD95/area bias of a class absent from both the truth and the
prediction are undefined (NaN) and left out of means; HD95 with one side empty is NaN too
(counted in `n_missing_hd95`). An empty head prediction makes the HC error missing, counted
in `n_missing_hc`.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from usdenoise.class_mapping import ClassMapping, map_classes
from usdenoise.data.phantom import ellipse_perimeter  # Ramanujan's perimeter
from usdenoise.errors import UsdenoiseError, optional_import
from usdenoise.postprocess import POSTPROCESS, postprocess_mask

SEGMENT_LOSSES = ("dice+ce", "dice", "ce")
NO_PROCESSING = (None, "", "none", "noisy")
# colours of classes 1.. in overlays (RGB, 0-1)
PALETTE = ((1.0, 0.2, 0.2), (0.2, 0.5, 1.0), (1.0, 0.8, 0.1), (0.8, 0.2, 1.0), (0.1, 0.9, 0.9))


# ---------------------------------------------------------------------------------------------
# metrics


def _as_numpy_mask(mask: Any) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise UsdenoiseError(f"expected a class map [H, W], got shape {tuple(mask.shape)}")
    return mask


def _class_areas(pred: np.ndarray, target: np.ndarray, num_classes: int):
    p = np.bincount(pred.ravel(), minlength=num_classes)[:num_classes].astype(np.float64)
    t = np.bincount(target.ravel(), minlength=num_classes)[:num_classes].astype(np.float64)
    both = (pred.astype(np.int64) * num_classes + target.astype(np.int64)).ravel()
    joint = np.bincount(both, minlength=num_classes * num_classes)[: num_classes**2]
    inter = np.diag(joint.reshape(num_classes, num_classes)).astype(np.float64)
    return p, t, inter


def _check_pair(pred: Any, target: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_numpy_mask(pred), _as_numpy_mask(target)
    if p.shape != t.shape:
        raise UsdenoiseError(f"prediction {p.shape} and true mask {t.shape} differ in size")
    for name, m in (("prediction", p), ("true mask", t)):
        if m.size and (m.min() < 0 or m.max() >= num_classes):
            raise UsdenoiseError(
                f"{name} holds class {int(m.max())}, outside 0..{num_classes - 1}")
    return p.astype(np.int64), t.astype(np.int64)


def dice_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """Dice 2|P∩T| / (|P|+|T|) of classes 0..num_classes-1; NaN where both are empty."""
    p, t = _check_pair(pred, target, num_classes)
    ps, ts, inter = _class_areas(p, t, num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ps + ts > 0, 2 * inter / (ps + ts), np.nan)


def iou_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """IoU |P∩T| / |P∪T| of every class; NaN where both are empty."""
    p, t = _check_pair(pred, target, num_classes)
    ps, ts, inter = _class_areas(p, t, num_classes)
    union = ps + ts - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def area_bias_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """Predicted area / true area - 1 per class (> 0: drawn too large); NaN if truly absent."""
    p, t = _check_pair(pred, target, num_classes)
    ps, ts, _ = _class_areas(p, t, num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ts > 0, ps / ts - 1.0, np.nan)


def hd95_per_class(pred: Any, target: Any, num_classes: int, *,
                   spacing_mm: Sequence[float] | None = None) -> np.ndarray:
    """95th-percentile Hausdorff distance per class (MONAI), in mm with `spacing_mm`
    (row_mm, col_mm), else in pixels. Background (class 0) and classes empty in the
    prediction or the truth are NaN."""
    metrics = optional_import("monai.metrics", extra="seg")
    p, t = _check_pair(pred, target, num_classes)
    out = np.full(num_classes, np.nan)
    present = [c for c in range(1, num_classes) if (p == c).any() and (t == c).any()]
    if not present:
        return out
    onehot_p = torch.from_numpy(np.stack([p == c for c in [0, *present]]))[None]
    onehot_t = torch.from_numpy(np.stack([t == c for c in [0, *present]]))[None]
    spacing = None if spacing_mm is None else [float(s) for s in spacing_mm]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = metrics.compute_hausdorff_distance(
            onehot_p, onehot_t, include_background=False, percentile=95, spacing=spacing)
    out[present] = values[0].double().numpy()
    return out


def head_classes(class_names: Sequence[str]) -> list[int]:
    """Classes that make up the head: those named '*head*', else every non-background class."""
    named = [i for i, n in enumerate(class_names) if "head" in str(n).lower()]
    return named or list(range(1, len(class_names)))


def largest_region(binary: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected region of a binary map with its holes filled (uint8 0/1)."""
    binary = np.ascontiguousarray(binary.astype(np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return None
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == label).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled | region


def edge_points(region: np.ndarray) -> np.ndarray:
    """(x, y) midpoints of the pixel edges between the region and its 4-neighbours outside.

    They lie on the region's border (half a pixel outside the border pixels' centres), so an
    ellipse fitted to them is not shrunk by half a pixel as one fitted to pixel centres is.
    """
    inside = np.pad(region.astype(bool), 1)
    points = []
    core = inside[1:-1, 1:-1]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        neighbour = inside[1 + dy: inside.shape[0] - 1 + dy, 1 + dx: inside.shape[1] - 1 + dx]
        ys, xs = np.nonzero(core & ~neighbour)
        points.append(np.stack([xs + dx / 2, ys + dy / 2], axis=1))
    return np.concatenate(points).astype(np.float64)


Ellipse = tuple[float, float, float, float, float]


def fit_head_ellipse(mask: Any, spacing_mm: float | Sequence[float], *,
                     classes: Sequence[int] = (1,)) -> Ellipse | None:
    """Ellipse (cx_mm, cy_mm, a_mm, b_mm, angle_deg) of the largest head region, or None
    when the mask has no head (or too little of one to fit an ellipse).

    The border points are scaled to mm *before* fitting, so a mask resized to a non-square
    pixel grid (anisotropic `spacing_mm` = (row_mm, col_mm)) measures correctly.
    """
    m = _as_numpy_mask(mask)
    region = largest_region(np.isin(m, list(classes)))
    if region is None:
        return None
    if isinstance(spacing_mm, (int, float)):
        dy = dx = float(spacing_mm)
    else:
        dy, dx = (float(v) for v in spacing_mm)
    if not (dy > 0 and dx > 0):
        raise UsdenoiseError(f"pixel size {spacing_mm!r}: must be positive")
    points = edge_points(region) * np.array([dx, dy])
    if len(points) < 5:
        return None
    (cx, cy), (width, height), angle = cv2.fitEllipse(points.astype(np.float32))
    if not all(math.isfinite(v) for v in (cx, cy, width, height)) or min(width, height) <= 0:
        return None
    return float(cx), float(cy), float(width) / 2, float(height) / 2, float(angle)


def head_circumference(mask: Any, spacing_mm: float | Sequence[float], *,
                       classes: Sequence[int] = (1,)) -> float | None:
    """Head circumference in mm of a class map (None: no head found)."""
    ellipse = fit_head_ellipse(mask, spacing_mm, classes=classes)
    return None if ellipse is None else ellipse_perimeter(ellipse[2], ellipse[3])


def _nanmean(values: Sequence[float]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None


def image_metrics(pred: Any, target: Any, *, class_names: Sequence[str],
                  spacing_mm: Sequence[float] | None = None,
                  hc_mm: float | None = None) -> dict[str, Any]:
    """All figures of one image: mean over foreground classes and per class, HD95 in px and
    (with a pixel size) mm, and the head circumference error where a pixel size is known.

    The reference HC is `hc_mm` (e.g. HC18's table) or, without it, the HC of the true mask.
    """
    n = len(class_names)
    p, t = _check_pair(pred, target, n)
    per = {"dice": dice_per_class(p, t, n), "iou": iou_per_class(p, t, n),
           "area_bias": area_bias_per_class(p, t, n), "hd95_px": hd95_per_class(p, t, n)}
    if spacing_mm is not None:
        dy, dx = (float(v) for v in spacing_mm)
        per["hd95_mm"] = (per["hd95_px"] * dy if math.isclose(dy, dx, rel_tol=1e-9)
                          else hd95_per_class(p, t, n, spacing_mm=(dy, dx)))
    out: dict[str, Any] = {}
    for key, values in per.items():
        out[key] = _nanmean(values[1:])
        for c in range(1, n):
            out[f"{key}_{class_names[c]}"] = None if math.isnan(values[c]) else float(values[c])
    present = [c for c in range(1, n) if (p == c).any() != (t == c).any()]
    out["missing_hd95"] = bool(present)
    classes = head_classes(class_names)
    out.update(hc_mm_pred=None, hc_mm_true=None, hc_abs_error_mm=None, hc_error_mm=None,
               hc_status="no pixel size")
    if spacing_mm is not None:
        reference = hc_mm if hc_mm is not None else head_circumference(t, spacing_mm,
                                                                       classes=classes)
        predicted = head_circumference(p, spacing_mm, classes=classes)
        out["hc_mm_true"], out["hc_mm_pred"] = reference, predicted
        if reference is None:
            out["hc_status"] = "no reference head"
        elif predicted is None:
            out["hc_status"] = "no head predicted"
        else:
            out["hc_status"] = "ok"
            out["hc_error_mm"] = predicted - reference
            out["hc_abs_error_mm"] = abs(predicted - reference)
    return out


# ---------------------------------------------------------------------------------------------
# input processing: speckle, then a denoiser, once per image


def _derive_seed(*parts: int) -> int:
    from usdenoise.train import derive_seed

    return derive_seed(*parts)


class InputPipeline:
    """Speckle (`noise`, seeded per image index) then a denoiser (`denoise`, `params`)."""

    def __init__(self, *, noise: str | None = None, denoise: str | None = None,
                 params: dict[str, Any] | None = None, seed: int = 0) -> None:
        from usdenoise.denoisers import make_denoiser
        from usdenoise.speckle import make_noise

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
            g = torch.Generator().manual_seed(_derive_seed(self.seed, 5, int(index)))
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


# ---------------------------------------------------------------------------------------------
# training task


class SegmentTask:
    """Image -> class map; Dice + cross-entropy; validation Dice (foreground mean)."""

    name = "segment"
    keys = ("image", "mask")
    figures = ("dice",)
    checkpoint_kind = "segmenter"

    def __init__(self, config: Any) -> None:
        from usdenoise.data import load_dataset

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
        self.pipeline = InputPipeline(noise=config.noise, denoise=config.denoise,
                                      params=config.denoise_params, seed=config.seed)

    def build_model(self) -> nn.Module:
        from usdenoise.models.segmenters import build_segmenter

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
        pred, true = output.argmax(1), target[:, 0]
        scores = []
        for c in range(1, output.shape[1]):
            p, t = pred == c, true == c
            inter = (p & t).flatten(1).sum(1).double()
            total = (p.flatten(1).sum(1) + t.flatten(1).sum(1)).double()
            scores.append(torch.where(total > 0, 2 * inter / total.clamp(min=1),
                                      torch.ones_like(total)))
        return {"dice": torch.stack(scores).mean(0)}


# ---------------------------------------------------------------------------------------------
# prediction and evaluation


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, out_size: Sequence[int] | None = None
            ) -> torch.Tensor:
    """Class maps `[B,H,W]` (argmax of the logits) for images `x[B,1,h,w]`; with `out_size`
    the maps are resized to it by nearest neighbour (never interpolated)."""
    from usdenoise.data.transforms import resize_mask

    device = next(model.parameters()).device
    pred = model(x.to(device).float()).argmax(1).cpu()
    if out_size is not None:
        pred = resize_mask(pred, tuple(out_size))
    return pred


def resolve_segmenter(path: str | Path) -> Path:
    """A run folder means its best checkpoint (`model_best`), else the file as given."""
    p = Path(path)
    if p.is_dir() and (p / "model_best.safetensors").is_file():
        return p / "model_best.safetensors"
    return p


def load_segmenter(path: str | Path, *, device: str = "cpu", option: str = "--model"
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """`load_model(kind="segmenter")` with a message that names the `option` the path came
    from and says what was given instead."""
    from usdenoise.checkpoint import load_model, read_sidecar

    resolved = resolve_segmenter(path)
    weights = resolved if resolved.suffix == ".safetensors" else None
    sidecar_path = (resolved.with_suffix(".json") if weights is not None
                    else (resolved / "model.json" if resolved.is_dir() else None))
    if sidecar_path is not None and sidecar_path.is_file():
        kind = read_sidecar(sidecar_path).get("kind")
        if kind != "segmenter":
            hint = "; a denoiser goes to --denoise-model" if option == "--model" else ""
            raise UsdenoiseError(
                f"{option} {path}: checkpoint is a {kind}, not a segmenter (train one with "
                f"`usdenoise segment train`{hint})")
    return load_model(resolved, kind="segmenter", map_location=device)


@dataclass
class SegmentEvaluation:
    """What `evaluate_segmenter` does: model, data, input processing, which images."""

    data: str
    model: str
    noise: str | None = None
    denoise: str | None = None
    denoise_params: dict[str, Any] = field(default_factory=dict)
    split: str = "test"  # train, val, test or all
    size: int | None = None  # load images at this size (None: their own)
    limit: int | None = None
    seed: int | None = None  # speckle and split seed; None: the run's
    examples: int = 4  # coloured overlays written
    device: str = "auto"
    classes: str | None = None  # model classes to evaluate ("head,..."); None/"auto": by name
    postprocess: str = "none"  # none, largest or ellipse (usdenoise.postprocess)


SEGMENT_COLUMNS = ("dice", "iou", "hd95", "area_bias", "hc_abs_error_mm", "n_missing_hc")


def _records_markdown(records: list[dict[str, Any]], notes: list[str]) -> str:
    lines = ["# usdenoise segment evaluate", ""]
    for record in records:
        lines.append(f"- model `{record['model']}` ({record['arch']}), data `{record['data']}`, "
                     f"split {record['split']}, {record['n_images']} images; HD95 in "
                     f"{record['hd95_unit']}")
    lines += ["", "| method | noise | " + " | ".join(SEGMENT_COLUMNS) + " |",
              "|" + "---|" * (len(SEGMENT_COLUMNS) + 2)]
    for r in records:
        cells = []
        for c in SEGMENT_COLUMNS:
            v = r.get(c)
            cells.append("–" if v is None else (str(v) if isinstance(v, int) else f"{v:.4g}"))
        noise = r["noise"] or "none"
        lines.append(f"| {r['method']} | {noise} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def overlay(image: torch.Tensor, pred: torch.Tensor, true: torch.Tensor | None = None
            ) -> torch.Tensor:
    """RGB `[3,H,W]`: the gray image, predicted classes tinted, the true border in green."""
    gray = image[0].float().clamp(0, 1).cpu().numpy()
    rgb = np.repeat(gray[None], 3, axis=0)
    p = pred.cpu().numpy()
    for c in range(1, int(p.max()) + 1 if p.size else 1):
        colour = np.array(PALETTE[(c - 1) % len(PALETTE)])[:, None]
        where = p == c
        rgb[:, where] = 0.55 * rgb[:, where] + 0.45 * colour
    if true is not None:
        t = true.cpu().numpy().astype(np.uint8)
        border = np.zeros_like(t)
        for c in range(1, int(t.max()) + 1 if t.size else 1):
            contours, _ = cv2.findContours((t == c).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(border, contours, -1, 1, thickness=max(1, min(t.shape) // 200))
        rgb[:, border > 0] = np.array([0.1, 1.0, 0.1])[:, None]
    return torch.from_numpy(rgb.astype(np.float32))


def _split_indices(settings: SegmentEvaluation, dataset: Any, run: Path,
                   sidecar: dict[str, Any], seed: int) -> list[int]:
    from usdenoise.data.splits import load_splits, split_dataset

    if settings.split == "all":
        indices = list(range(len(dataset)))
    else:
        trained_on = sidecar.get("meta", {}).get("config", {}).get("data")
        splits_path = run / "splits.json"
        if trained_on == settings.data and splits_path.is_file():
            splits = load_splits(splits_path, dataset=dataset)
        else:
            splits = split_dataset(dataset, seed=seed)
        indices = list(splits[settings.split])
        if not indices:
            raise UsdenoiseError(f"{settings.data}: the {settings.split} split is empty "
                                 "(too few subjects); use --split all")
    return indices[: settings.limit] if settings.limit is not None else indices


def _class_mapping(settings: SegmentEvaluation, sidecar: dict[str, Any],
                   data_names: tuple[str, ...]) -> ClassMapping:
    """The model's classes matched to the data's by name (`usdenoise.class_mapping`)."""
    names = tuple(str(n) for n in sidecar.get("meta", {}).get("class_names") or ())
    n_model = int(sidecar["config"].get("num_classes", len(names) or 2))
    if not names:  # an unnamed model: by index when the counts agree, else HC18's names
        names = data_names if len(data_names) == n_model else ("background", "head")
    if len(names) != n_model:
        raise UsdenoiseError(f"--model {settings.model}: checkpoint names {len(names)} classes "
                             f"({', '.join(names)}) but predicts {n_model}")
    return map_classes(names, data_names, classes=settings.classes, data_label=settings.data,
                       model_label=str(settings.model))


def evaluate_segmenter(settings: SegmentEvaluation, out_dir: str | Path, *,
                       overwrite: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Predict and measure; writes results.json/csv/md, per_image.csv, masks/<id>.png (class
    maps at each image's own size) and overlays/<id>.png for the first `examples` images.
    Returns (records, notes)."""
    from usdenoise.data import load_dataset
    from usdenoise.data.transforms import resize_image
    from usdenoise.io import publish_folder, write_image, write_mask
    from usdenoise.report import records_to_csv, records_to_json, write_text_atomic

    out_dir = Path(out_dir)
    if settings.split not in ("train", "val", "test", "all"):
        raise UsdenoiseError(f"--split {settings.split!r}: choose train, val, test or all")
    if settings.postprocess not in POSTPROCESS:
        raise UsdenoiseError(f"--postprocess {settings.postprocess!r}: choose "
                             f"{', '.join(POSTPROCESS)}")
    if (out_dir / "results.json").exists() and not overwrite:
        raise UsdenoiseError(f"{out_dir}: results.json already exists (use --overwrite)")
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, sidecar = load_segmenter(settings.model, device=device)
    meta = sidecar.get("meta", {})
    run_config = meta.get("config", {})
    model_names = tuple(meta.get("class_names") or ("background", "head"))
    seed = settings.seed if settings.seed is not None else int(run_config.get("seed", 0))
    model_size = meta.get("image_size", run_config.get("image_size"))
    dataset = load_dataset(settings.data, size=settings.size)
    data_names = tuple(str(n) for n in dataset.class_names)
    mapping = _class_mapping(settings, sidecar, data_names)
    class_names = mapping.names  # what is measured: background + the evaluated classes
    data_label = str(getattr(dataset, "name", settings.data.split(":")[0]))
    run = resolve_segmenter(settings.model).parent
    indices = _split_indices(settings, dataset, run, sidecar, seed)
    pipeline = InputPipeline(noise=settings.noise, denoise=settings.denoise,
                             params=settings.denoise_params, seed=seed)

    staging = out_dir / ".partial"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        (staging / "masks").mkdir(parents=True)
        (staging / "overlays").mkdir()
    except OSError as exc:
        raise UsdenoiseError(f"{out_dir}: cannot write there ({exc.strerror})") from None
    rows: list[dict[str, Any]] = []
    seconds = 0.0
    from usdenoise.progress import make_progress

    try:
        with make_progress() as bar:
            task = bar.add_task("segment", total=len(indices), status=pipeline.label)
            for k, index in enumerate(indices):
                sample = dataset[index]
                check_sample(sample, data_names, what="segment evaluate",
                             owner="the model" if mapping.identity else settings.data)
                image = sample["image"]
                size = tuple(image.shape[-2:])
                x = resize_image(image, model_size) if model_size else image
                x = pipeline(x, index)
                started = time.perf_counter()
                pred = predict(model, x[None], out_size=size)[0]
                pred = postprocess_mask(pred, settings.postprocess,
                                        head=head_classes(model_names))
                seconds += time.perf_counter() - started
                measured, truth = mapping.prediction(pred), mapping.truth(sample["mask"])
                values = image_metrics(measured, truth, class_names=class_names,
                                       spacing_mm=sample.get("spacing_mm"),
                                       hc_mm=sample.get("hc_mm"))
                name = str(sample["id"]).replace("/", "_").replace("\\", "_")
                write_mask(staging / "masks" / f"{name}.png", pred)  # the model's own classes
                if k < settings.examples:
                    shown = resize_image(x, size) if tuple(x.shape[-2:]) != size else x
                    write_image(staging / "overlays" / f"{name}.png",
                                overlay(shown, measured, truth))
                rows.append({"id": sample["id"], "subject": sample.get("subject"),
                             "spacing_mm": sample.get("spacing_mm"), **values})
                bar.advance(task)
        records, notes = _summarise(rows, settings, sidecar, dataset, pipeline, class_names,
                                    seconds)
        if not mapping.identity:
            records[0].update(mapping.describe())
            notes = mapping.notes(data_label) + notes
        per_image = [{"method": pipeline.label, "noise": pipeline.noise_spec,
                      **{k: v for k, v in r.items() if k != "spacing_mm"}} for r in rows]
        write_text_atomic(staging / "results.json", records_to_json(records))
        write_text_atomic(staging / "results.csv", records_to_csv(records))
        write_text_atomic(staging / "results.md", _records_markdown(records, notes))
        write_text_atomic(staging / "per_image.csv", records_to_csv(per_image))
        publish_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return records, notes


def _summarise(rows, settings, sidecar, dataset, pipeline, class_names, seconds):
    n = len(rows)
    all_mm = all(r.get("spacing_mm") is not None for r in rows)
    unit = "mm" if all_mm else "px"
    noise_name, _, level_text = (pipeline.noise_spec or "").partition(":")
    try:
        level: float | str | None = float(level_text)
    except ValueError:  # a range ("0.1-0.75") or nothing
        level = level_text or None
    record: dict[str, Any] = {
        "method": pipeline.label, "noise": noise_name or None, "level": level,
        "dataset": getattr(dataset, "name", settings.data.split(":")[0]),
        "data": settings.data, "split": settings.split, "n_images": n,
        "model": str(settings.model), "arch": sidecar["arch"],
        "postprocess": settings.postprocess,
        "trained_inputs": sidecar.get("meta", {}).get("inputs"),
    }
    mean = lambda key: _nanmean([r.get(key) for r in rows])  # noqa: E731
    record.update(dice=mean("dice"), iou=mean("iou"),
                  hd95=mean(f"hd95_{unit}"), hd95_unit=unit, area_bias=mean("area_bias"),
                  hc_abs_error_mm=mean("hc_abs_error_mm"), hc_error_mm=mean("hc_error_mm"),
                  n_hc=sum(r["hc_status"] == "ok" for r in rows),
                  n_missing_hc=sum(r["hc_status"] == "no head predicted" for r in rows),
                  n_hc_skipped=sum(r["hc_status"] in ("no pixel size", "no reference head")
                                   for r in rows),
                  n_missing_hd95=sum(bool(r["missing_hd95"]) for r in rows))
    for c in class_names[1:]:
        for key in ("dice", "iou", "area_bias"):
            record[f"{key}_{c}"] = mean(f"{key}_{c}")
        record[f"hd95_{c}"] = mean(f"hd95_{unit}_{c}")
    record["seconds_per_image"] = seconds / n if n else None
    notes = []
    no_spacing = sum(r["hc_status"] == "no pixel size" for r in rows)
    if no_spacing:
        notes.append(f"{no_spacing} of {n} images have no pixel size: head circumference "
                     "skipped for them" + ("" if all_mm else ", HD95 in pixels"))
    if record["n_missing_hc"]:
        notes.append(f"{record['n_missing_hc']} of {n} images: no head predicted, HC error "
                     "missing (counted in n_missing_hc)")
    return [record], notes


# ---------------------------------------------------------------------------------------------
# command-line settings for `segment train`


SEGMENT_DEFAULTS: dict[str, Any] = {"task": "segment", "arch": "unet", "loss": "dice+ce",
                                    "noise": "none", "image_size": 128}


def segment_train_config(given: dict[str, Any], *, config: str | Path | None = None,
                         resume: str | Path | None = None):
    """TrainConfig for `segment train`: segment defaults < TOML file < options given.

    The crop defaults to the whole image (`image_size`); on `--resume` the run's settings
    are the base.
    """
    from usdenoise.config import config_from_dict, read_toml

    if resume is not None:
        from usdenoise.train import run_config

        base = run_config(resume)
        if base.get("task") != "segment":
            raise UsdenoiseError(f"--resume {resume}: that run trained a {base.get('task')}, "
                                 "not a segmenter")
        return config_from_dict({**base, **given}, where="command line")
    raw: dict[str, Any] = {}
    where = "command line"
    if config is not None:
        raw = read_toml(config)
        where = str(config)
    merged = {**SEGMENT_DEFAULTS, **raw, **given}
    if merged.get("task") != "segment":
        raise UsdenoiseError(f"{where}: task {merged.get('task')!r}: segment train trains "
                             "task 'segment'")
    if "crop" not in merged:
        if merged.get("image_size") is None:
            raise UsdenoiseError("segment train: give --size N (images resized) or --crop N")
        merged["crop"] = merged["image_size"]
    return config_from_dict(merged, where=where)
