"""Per-class segmentation figures of class maps: Dice, IoU, HD95, area bias, HC error.

The empty-class rule, the same everywhere: a class absent from both the truth and the
prediction has no defined Dice/IoU/HD95/area bias (NaN, left out of means; `dice_score`
takes the value to use instead, e.g. 1 for validation crops). HD95 with one side empty is
NaN too. An empty head prediction makes the HC error missing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError, optional_import
from usdenoise.metrics.geometry import as_class_map, head_circumference, head_classes


def dice_score(intersection: Any, total: Any, *, empty: float = float("nan")) -> Any:
    """2|P∩T| / (|P|+|T|) from areas (numpy arrays or tensors); `empty` where both are empty."""
    if isinstance(total, torch.Tensor):
        return torch.where(total > 0, 2 * intersection / total.clamp(min=1),
                           torch.full_like(total, empty))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * intersection / np.maximum(total, 1), empty)


def batch_foreground_dice(pred: torch.Tensor, true: torch.Tensor, num_classes: int, *,
                          empty: float = float("nan")) -> torch.Tensor:
    """Mean Dice over classes 1.. per image of class maps `[B,H,W]` (`dice_score`'s rule)."""
    scores = []
    for c in range(1, num_classes):
        p, t = pred == c, true == c
        inter = (p & t).flatten(1).sum(1).double()
        total = (p.flatten(1).sum(1) + t.flatten(1).sum(1)).double()
        scores.append(dice_score(inter, total, empty=empty))
    return torch.stack(scores).mean(0)


def _class_areas(pred: np.ndarray, target: np.ndarray, num_classes: int):
    p = np.bincount(pred.ravel(), minlength=num_classes)[:num_classes].astype(np.float64)
    t = np.bincount(target.ravel(), minlength=num_classes)[:num_classes].astype(np.float64)
    both = (pred.astype(np.int64) * num_classes + target.astype(np.int64)).ravel()
    joint = np.bincount(both, minlength=num_classes * num_classes)[: num_classes**2]
    inter = np.diag(joint.reshape(num_classes, num_classes)).astype(np.float64)
    return p, t, inter


def check_pair(pred: Any, target: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_class_map(pred), as_class_map(target)
    if p.shape != t.shape:
        raise UsdenoiseError(f"prediction {p.shape} and true mask {t.shape} differ in size")
    for name, m in (("prediction", p), ("true mask", t)):
        if m.size and (m.min() < 0 or m.max() >= num_classes):
            raise UsdenoiseError(
                f"{name} holds class {int(m.max())}, outside 0..{num_classes - 1}")
    return p.astype(np.int64), t.astype(np.int64)


def dice_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """Dice 2|P∩T| / (|P|+|T|) of classes 0..num_classes-1; NaN where both are empty."""
    p, t = check_pair(pred, target, num_classes)
    ps, ts, inter = _class_areas(p, t, num_classes)
    return dice_score(inter, ps + ts)


def iou_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """IoU |P∩T| / |P∪T| of every class; NaN where both are empty."""
    p, t = check_pair(pred, target, num_classes)
    ps, ts, inter = _class_areas(p, t, num_classes)
    union = ps + ts - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def area_bias_per_class(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """Predicted area / true area - 1 per class (> 0: drawn too large); NaN if truly absent."""
    p, t = check_pair(pred, target, num_classes)
    ps, ts, _ = _class_areas(p, t, num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ts > 0, ps / ts - 1.0, np.nan)


def hd95_per_class(pred: Any, target: Any, num_classes: int, *,
                   spacing_mm: Sequence[float] | None = None) -> np.ndarray:
    """95th-percentile Hausdorff distance per class (MONAI), in mm with `spacing_mm`
    (row_mm, col_mm), else in pixels. Background (class 0) and classes empty in the
    prediction or the truth are NaN."""
    metrics = optional_import("monai.metrics", extra="seg")
    p, t = check_pair(pred, target, num_classes)
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


def nanmean(values: Sequence[float | None] | np.ndarray) -> float | None:
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
    p, t = check_pair(pred, target, n)
    per = {"dice": dice_per_class(p, t, n), "iou": iou_per_class(p, t, n),
           "area_bias": area_bias_per_class(p, t, n), "hd95_px": hd95_per_class(p, t, n)}
    if spacing_mm is not None:
        dy, dx = (float(v) for v in spacing_mm)
        per["hd95_mm"] = (per["hd95_px"] * dy if math.isclose(dy, dx, rel_tol=1e-9)
                          else hd95_per_class(p, t, n, spacing_mm=(dy, dx)))
    out: dict[str, Any] = {}
    for key, values in per.items():
        out[key] = nanmean(values[1:])
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
