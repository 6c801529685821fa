"""Benchmark runner: every (method, noise, level) on the same noisy test images.

The noisy images are made once per noise level from a fixed seed, so every method sees exactly
the same input; timing covers the method alone, after one warm-up call.

Real-scan figures (`metrics.noreference`), for every method against the image it was given
(the original scan with `no_reference`): speckle index and ENL in homogeneous patches found
once on that input, skull-edge contrast ratio on the mask border, the method-noise
correlation, and with a `segmenter` the frozen-segmenter check (Dice and HC error on the
output against those on the input). Each method's output is also blended with its input
over `strengths`, giving curves of speckle reduction against edge ratio and Dice; the
figures at a common speckle reduction (`match_reduction`) are interpolated on them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from usdenoise import metrics
from usdenoise.checkpoint import load_segmenter, segmenter_input_size
from usdenoise.core.devices import resolve_auto
from usdenoise.core.distributed import (
    World,
    all_gather,
    gather_to_main,
    joined,
    share,
    together,
)
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import input_folders, staged_dir
from usdenoise.core.progress import make_progress
from usdenoise.data import load_dataset
from usdenoise.data.splits import save_splits, split_dataset
from usdenoise.data.transforms import resize_image, resize_mask
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.registry import make_denoiser
from usdenoise.metrics import noreference as nr
from usdenoise.metrics.geometry import head_classes
from usdenoise.metrics.segmentation import image_metrics
from usdenoise.noise.speckle import make_noise
from usdenoise.reporting.figures import save_example_grid, save_tradeoff_curves
from usdenoise.reporting.tables import (
    escape_markdown,
    json_safe,
    write_csv_rows,
    write_results,
    write_text_atomic,
)

FULL_REFERENCE = ("psnr", "ssim", "ms_ssim")


@dataclass
class MethodSpec:
    """A method to evaluate: registry name, parameters, and the label shown in tables."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def build(self) -> Denoiser:
        return make_denoiser(self.name, **self.params)


@dataclass
class EvaluationSettings:
    data: str = "phantom"
    methods: list[MethodSpec] = field(default_factory=list)
    noises: list[str] = field(default_factory=lambda: ["rayleigh:0.25"])
    #: train, val, test or all; None: test, or all with no_reference (nothing was trained
    #: on images that have no clean version, so every image is evaluated)
    split: str | None = None
    size: int | None = 256
    limit: int | None = None
    seed: int = 0
    examples: int = 2
    no_reference: bool = False
    #: segmenter run or checkpoint for the frozen-segmenter check (trained on originals)
    segmenter: str | None = None
    #: evaluate on this data set instead of DATA's test split (a model trained on DATA
    #: measured on other data); its images are all used unless `split` says otherwise
    test: str | None = None
    #: strengths α of the blend curves (α = 0, the input, is always added); [] turns them off
    strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    #: common speckle reduction for the matched comparison: a fraction (0.3 = index -30 %)
    #: or "default" (the reduction the `default` method reaches, else 0.3)
    match_reduction: float | str = 0.3
    device: str = "auto"  # where the segmenter runs
    #: image-loading worker processes of the DataLoader (0: load in this process)
    workers: int = 0


def parse_methods(text: str, params: list[str] | None = None) -> list[MethodSpec]:
    """`"bm3d,lee"` plus `["lee.window=7"]` -> MethodSpecs; `noisy` is always first."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise UsdenoiseError("--methods: give at least one method name")
    per_method: dict[str, dict[str, str]] = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        method, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise UsdenoiseError(f"--param {item!r}: expected method.key=value, e.g. lee.window=7")
        if method.lower() not in names:
            raise UsdenoiseError(f"--param {item!r}: method {method!r} is not in --methods")
        per_method.setdefault(method.lower(), {})[param.strip()] = value.strip()
    specs = [MethodSpec("noisy", {}, "noisy")]
    for name in dict.fromkeys(names):
        if name != "noisy":
            specs.append(MethodSpec(name, per_method.get(name, {}), name))
    return specs


def _is_foreign(settings: EvaluationSettings) -> bool:
    return settings.test is not None and settings.test != settings.data


@dataclass
class ImagePlan:
    """The images an evaluation measures, as listed (nothing read yet): which images of
    which data set, in which order, and the subject split they come from."""

    dataset: Any
    indices: list[int]
    name: str
    class_names: tuple[str, ...]
    spec: str
    splits: dict[str, list[int]]


def _test_images(settings: EvaluationSettings) -> ImagePlan:

    spec = settings.test or settings.data
    dataset = load_dataset(spec, size=settings.size)
    splits = split_dataset(dataset, seed=settings.seed)
    split = settings.split or ("all" if settings.no_reference or _is_foreign(settings)
                               else "test")
    indices = list(range(len(dataset))) if split == "all" else list(splits[split])
    if not indices:  # not a silent fallback to every image: those include training images
        raise UsdenoiseError(f"{spec}: the {split} split is empty ({len(dataset)} images, too "
                             "few subjects to split); use --split all")
    if settings.limit is not None:
        indices = indices[: settings.limit]
    names = tuple(str(n) for n in getattr(dataset, "class_names", ("background", "head")))
    return ImagePlan(dataset, indices, getattr(dataset, "name", spec.split(":")[0]), names,
                     spec, splits)


class ImageShare(torch.utils.data.Dataset):
    """One process's images for the DataLoader: (position in the evaluation, sample)."""

    def __init__(self, plan: ImagePlan, positions: list[int]) -> None:
        self.dataset, self.indices, self.positions = plan.dataset, plan.indices, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[int, dict]:
        position = self.positions[k]
        return position, self.dataset[self.indices[position]]


def _as_is(item: Any) -> Any:
    return item


def noisy_image(sample: dict, noise: Any, seed: int, position: int) -> torch.Tensor:
    """The seeded noisy copy of one image; the seed depends on the image's position only,
    so every method, and every process of a torchrun launch, sees the same noisy image."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + position)
    return noise(sample["image"][None].float(), generator=generator)


def split_noise_spec(spec: str) -> tuple[str, float | str]:
    """`"rayleigh:0.25"` -> ("rayleigh", 0.25); a range or mixture keeps its text as the level."""
    name, _, level_text = spec.partition(":")
    try:
        return name, float(level_text)
    except ValueError:
        return name, level_text


def _file_label(text: str) -> str:
    """A file-name-safe form of a noise spec: `rayleigh:0.25` -> `rayleigh_0.25`
    (`mixture:a:0.1|b:2` has ':' and '|', which become '-')."""
    text = text.replace(":", "_", 1)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "none"


def derived_roi_mask(image: torch.Tensor) -> torch.Tensor | None:
    """Bright/dark class map [H, W] for images without a mask: Otsu's threshold on a smoothed
    copy (Gaussian, sigma 3 % of the smaller side). Class 1 plays the part of the head
    (target) and the ring of class 0 around it the background, as with a real mask.
    Returns None for a flat image, where no threshold exists."""
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    array = image.reshape(image.shape[-2:]).double().numpy()
    smooth = gaussian_filter(array, sigma=max(1.0, 0.03 * min(array.shape)), mode="reflect")
    if float(smooth.max() - smooth.min()) < 1e-6:
        return None
    bright = smooth > threshold_otsu(smooth)
    if bright.all() or not bright.any():
        return None
    return torch.from_numpy(bright.astype("int64"))


def _rois(mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Head and background ROIs of one image's mask [1, H, W], found once and used for every
    method and level (the dilations are the costliest step of a cheap method's figures);
    None without two classes, or when the ROI erodes away on a tiny image."""
    if mask is None or not (bool((mask > 0).any()) and bool((mask == 0).any())):
        return None
    try:
        return metrics.head_background_rois(mask)
    except UsdenoiseError:
        return None


def _image_metrics(
    output: torch.Tensor, clean: torch.Tensor | None, reference_for_epi: torch.Tensor,
    noisy: torch.Tensor, rois: tuple[torch.Tensor, torch.Tensor] | None,
) -> dict[str, float | None]:

    values: dict[str, float | None] = {}
    if clean is not None:
        values["psnr"] = float(metrics.psnr(output, clean))
        values["ssim"] = float(metrics.ssim(output, clean))
        values["ms_ssim"] = float(metrics.ms_ssim(output, clean))
    values["epi"] = float(metrics.epi(output, reference_for_epi))
    values.update(enl=None, cnr=None, gcnr=None, ssi=None)
    if rois is not None:
        head, background = rois
        try:
            values["enl"] = float(metrics.enl(output, head))
            values["cnr"] = float(metrics.cnr(output, head, background))
            values["gcnr"] = float(metrics.gcnr(output, head, background))
            values["ssi"] = float(metrics.ssi(noisy, output, head))
        except UsdenoiseError:  # a ROI too small for a figure: leave the ROI metrics empty
            pass
    return values


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else None


# ---- real-scan figures (metrics.noreference) and the frozen-segmenter check ----------------

REAL_SCAN_KEYS = ("speckle_index", "speckle_index_change", "patch_enl", "edge_contrast",
                  "edge_ratio", "method_noise_corr")
SEGMENTER_KEYS = ("seg_dice", "seg_dice_input", "dice_drop", "seg_hc_abs_error_mm",
                  "seg_hc_abs_error_mm_input", "hc_error_change_mm")
CURVE_KEYS = ("speckle_index_change", "edge_ratio", "method_noise_corr", "seg_dice",
              "dice_drop", "hc_error_change_mm")
# the method-noise correlation is left out: the residual of strength α is α·r, and a
# Pearson correlation does not change with the scale, so it is the same at every strength
MATCHED_KEYS = ("edge_ratio", "seg_dice", "dice_drop", "hc_error_change_mm")


class FrozenSegmenter:
    """A segmenter trained on original images, used unchanged: the head it finds on a
    denoised image against the head it finds on the input (Dice, HC error vs the truth).

    Prediction as in `segment evaluate`: resize to the model's training size, argmax, class
    map back to the image size by nearest neighbour. Only the head is compared (the model's
    classes named `*head*` against the data's), so a HC18 model can be measured on PSFHS."""

    def __init__(self, path: str, *, device: str = "auto") -> None:
        self.path = str(path)
        self.model, sidecar = load_segmenter(path, device=resolve_auto(device),
                                             option="--segmenter")
        meta = sidecar.get("meta", {})
        self.class_names = tuple(str(n) for n in meta.get("class_names")
                                 or ("background", "head"))
        self.size = segmenter_input_size(sidecar)
        self.head = head_classes(self.class_names)
        self.inputs = meta.get("inputs")

    @torch.no_grad()
    def head_mask(self, image: torch.Tensor) -> torch.Tensor:
        """Predicted head, bool [H, W], for one image [1, H, W] or [1, 1, H, W]."""
        x = image.reshape(1, *image.shape[-2:]).float().cpu()
        size = tuple(x.shape[-2:])
        if self.size:
            x = resize_image(x, self.size)
        device = next(self.model.parameters()).device
        pred = self.model(x[None].to(device)).argmax(1).cpu()
        return torch.isin(resize_mask(pred, size)[0], torch.tensor(self.head))

    def measure(self, image: torch.Tensor, truth: torch.Tensor, sample: dict) -> dict:
        pred = self.head_mask(image).long()
        values = image_metrics(pred, truth.long(), class_names=("background", "head"),
                               spacing_mm=sample.get("spacing_mm"), hc_mm=sample.get("hc_mm"))
        return {"dice": values["dice"], "hc_abs_error_mm": values["hc_abs_error_mm"],
                "hc_status": values["hc_status"]}


@dataclass
class ScanContext:
    """What is found once on the input image and reused for every method's output."""

    image: torch.Tensor  # the input [1, 1, H, W]
    patches: list[nr.Patch]
    sector: np.ndarray
    head: torch.Tensor | None  # the true head, bool [H, W], where a mask exists
    speckle_index: float | None
    seg: dict | None = None  # the frozen segmenter on the input


def _true_head(sample: dict, data_classes: tuple[str, ...]) -> torch.Tensor | None:
    mask = sample.get("mask")
    if not isinstance(mask, torch.Tensor):
        return None
    head = torch.isin(mask.reshape(mask.shape[-2:]), torch.tensor(head_classes(data_classes)))
    return head if bool(head.any()) and not bool(head.all()) else None


def _context(x: torch.Tensor, sample: dict, data_classes: tuple[str, ...],
             segmenter: FrozenSegmenter | None) -> ScanContext:
    sector = nr.scan_sector(x)
    patches = nr.find_homogeneous_patches(x, within=sector)
    head = _true_head(sample, data_classes)
    ctx = ScanContext(x, patches, sector, head, nr.speckle_index(x, patches))
    if segmenter is not None and head is not None:
        ctx.seg = segmenter.measure(x, head, sample)
    return ctx


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _real_scan_values(ctx: ScanContext, y: torch.Tensor, segmenter: FrozenSegmenter | None,
                      sample: dict, *, identity: bool = False) -> dict[str, Any]:
    """The real-scan figures of one output `y` against its input (`ctx.image`)."""
    si = nr.speckle_index(y, ctx.patches)
    values: dict[str, Any] = {
        "speckle_index": si,
        "speckle_index_change": (None if si is None or not ctx.speckle_index
                                 else si / ctx.speckle_index - 1.0),
        "patch_enl": nr.patch_enl(y, ctx.patches),
        "n_patches": len(ctx.patches),
        "edge_contrast": None if ctx.head is None else nr.edge_contrast(y, ctx.head),
        "edge_ratio": None if ctx.head is None else nr.edge_ratio(y, ctx.image, ctx.head),
        "method_noise_corr": (None if identity else
                              nr.method_noise_correlation(ctx.image, y, within=ctx.sector)),
    }
    if segmenter is not None:
        # ctx.seg is only measured where there is a true head
        seg = (ctx.seg if identity or ctx.seg is None or ctx.head is None
               else segmenter.measure(y, ctx.head, sample))
        base = ctx.seg or {}
        values.update(
            seg_dice=None if seg is None else seg["dice"], seg_dice_input=base.get("dice"),
            seg_hc_abs_error_mm=None if seg is None else seg["hc_abs_error_mm"],
            seg_hc_abs_error_mm_input=base.get("hc_abs_error_mm"),
            seg_hc_status=None if seg is None else seg["hc_status"],
        )
        values["dice_drop"] = _difference(values["seg_dice_input"], values["seg_dice"])
        values["hc_error_change_mm"] = _difference(values["seg_hc_abs_error_mm"],
                                                   values["seg_hc_abs_error_mm_input"])
    return values


def _real_scan_summary(rows: list[dict], segmenter: FrozenSegmenter | None) -> dict[str, Any]:
    out: dict[str, Any] = {key: _mean([r.get(key) for r in rows]) for key in REAL_SCAN_KEYS}
    out["n_missing_patches"] = sum(r.get("speckle_index") is None for r in rows)
    out["n_missing_edge"] = sum(r.get("edge_ratio") is None for r in rows)
    if segmenter is not None:
        out.update({key: _mean([r.get(key) for r in rows]) for key in SEGMENTER_KEYS})
        # the mean can be carried by the few scans the segmenter already finds hard (on HC18
        # 5 of 110 gave half of it); the median says what a typical scan loses
        drops = [r["dice_drop"] for r in rows if r.get("dice_drop") is not None]
        out["dice_drop_median"] = statistics.median(drops) if drops else None
        out["n_seg"] = sum(r.get("seg_dice") is not None for r in rows)
        out["n_missing_seg"] = sum(r.get("seg_dice") is None for r in rows)
        out["n_missing_hc"] = sum(r.get("seg_hc_status") == "no head predicted" for r in rows)
    return out


def _alphas(strengths: list[float]) -> list[float]:
    return sorted({0.0, *(float(a) for a in strengths)})


def curve_values(full: torch.Tensor, ctx: ScanContext, sample: dict, strengths: list[float],
                 segmenter: FrozenSegmenter | None) -> list[dict]:
    """One image's curve figures at α = 0 and each strength: those of
    α · full + (1 − α) · input, what the method's `strength` computes (`core.params.blend`),
    without running it again."""
    points = []
    for alpha in _alphas(strengths):
        y = (alpha * full.float() + (1.0 - alpha) * ctx.image.float()).clamp(0.0, 1.0)
        values = _real_scan_values(ctx, y, segmenter, sample, identity=alpha == 0.0)
        points.append({key: values.get(key) for key in CURVE_KEYS})
    return points


def curve_means(per_image: list[list[dict]], strengths: list[float]) -> list[dict]:
    """The strength curve: the mean of every image's `curve_values` at each strength."""
    points = []
    for k, alpha in enumerate(_alphas(strengths)):
        point: dict[str, Any] = {"strength": alpha}
        point.update({key: _mean([image[k].get(key) for image in per_image])
                      for key in CURVE_KEYS})
        if alpha == 0.0:
            point.update(speckle_index_change=0.0, edge_ratio=1.0)
        points.append(point)
    return points


def interpolate_at_reduction(curve: list[dict], target: float) -> dict[str, Any] | None:
    """The curve's figures where its speckle-index change first reaches `-target` (linear
    between neighbouring strengths); None if the method never reduces the index that far."""
    goal = -abs(float(target))
    for a, b in zip(curve, curve[1:], strict=False):
        ra, rb = a.get("speckle_index_change"), b.get("speckle_index_change")
        if ra is None or rb is None or not (rb <= goal <= ra):
            continue
        t = 0.0 if ra == rb else (ra - goal) / (ra - rb)
        out: dict[str, Any] = {"strength": a["strength"] + t * (b["strength"] - a["strength"])}
        for key in MATCHED_KEYS:
            va, vb = a.get(key), b.get(key)
            if va is None and t == 1.0:
                va = vb
            out[key] = None if va is None or vb is None else va + t * (vb - va)
        return out
    return None


def _matched_target(settings: EvaluationSettings, records: list[dict]) -> float:
    if isinstance(settings.match_reduction, str):
        found = [r.get("speckle_index_change") for r in records if r["method"] == "default"]
        if found and found[0] is not None and found[0] < 0:
            return -float(found[0])
        return 0.3
    return float(settings.match_reduction)


def _add_matched(records: list[dict], curves: dict[str, list[dict]], target: float) -> None:
    for record in records:
        curve = curves.get(record["method"])
        record["matched_reduction"] = target
        at = interpolate_at_reduction(curve, target) if curve else None
        record["matched_strength"] = None if at is None else at["strength"]
        for key in MATCHED_KEYS:
            if key in SEGMENTER_KEYS and "seg_dice" not in record:
                continue  # no segmenter: no Dice at the match either
            record[f"matched_{key}"] = None if at is None else at[key]


def _fmt_cell(value: Any, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{100 * value:+.1f} %" if percent else f"{value:.3f}"


def real_scan_markdown(records: list[dict]) -> str:
    """The real-scan table(s) of results.md: one per (noise, level)."""
    columns = [("speckle_index", "speckle index", False),
               ("speckle_index_change", "SI change", True), ("patch_enl", "ENL (patches)", False),
               ("edge_ratio", "edge ratio", False), ("method_noise_corr", "method noise r", False),
               ("gcnr", "gCNR head", False), ("dice_drop", "Dice drop", False),
               ("dice_drop_median", "Dice drop (median)", False),
               ("hc_error_change_mm", "HC err. change mm", False),
               ("matched_strength", "α at match", False),
               ("matched_edge_ratio", "edge ratio at match", False),
               ("matched_dice_drop", "Dice drop at match", False)]
    used = [c for c in columns if any(r.get(c[0]) is not None for r in records)]
    parts = ["## Real-scan figures", "",
             "Speckle index σ/μ and ENL in homogeneous patches found on the input; edge ratio: "
             "skull-edge contrast output / input on the mask border (≥ 0.95 kept); method "
             "noise r: correlation of the residual's energy with the input's gradient (lower "
             "is better); Dice drop and HC error change of the frozen segmenter (output minus "
             "input, HC in mm). \"at match\": interpolated on the strength curve where the "
             "speckle index is reduced by the common target.", ""]
    groups: dict[tuple[Any, Any], list[dict]] = {}
    for record in records:
        groups.setdefault((record.get("noise"), record.get("level")), []).append(record)
    for (noise, level), rows in groups.items():
        target = rows[0].get("matched_reduction")
        title = escape_markdown(f"{noise} {level}" if noise else "images as they are")
        missing = rows[0].get("n_missing_patches")
        parts.append(f"**{title}** — match at speckle index −{100 * (target or 0):.0f} %, "
                     f"{missing or 0} of {rows[0]['n_images']} images without homogeneous "
                     "patches\n")
        parts.append("| method | " + " | ".join(c[1] for c in used) + " |")
        parts.append("|" + "---|" * (len(used) + 1))
        for r in rows:
            cells = [_fmt_cell(r.get(key), percent) for key, _, percent in used]
            parts.append(f"| {escape_markdown(r['method'])} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def evaluate(settings: EvaluationSettings, out_dir: Path, *, overwrite: bool = False) -> list[dict]:
    """Run the benchmark and write results.json/csv/md, per_image.csv, curves.json, example
    figures and the speckle-reduction trade-off figures.

    Images are read one at a time through a DataLoader; each is measured at every noise
    level by every method and only its figures are kept (in a temporary file), so memory
    does not grow with the number of images. Under torchrun each process measures its share
    (image i goes to process i % world size) and rank 0 merges the figures back in image
    order and writes the same files one process would; every process returns the records.
    """

    out_dir = Path(out_dir)
    _check_settings(settings)
    with joined() as world:
        with together(world):
            if (out_dir / "results.json").exists() and not overwrite:
                raise UsdenoiseError(f"{out_dir}: results.json already exists (use --overwrite)")
            # bad parameters fail before any work
            denoisers = [(m, m.build()) for m in settings.methods]
            segmenter = (FrozenSegmenter(settings.segmenter, device=settings.device)
                         if settings.segmenter else None)
            plan = _test_images(settings)
            if segmenter is not None and getattr(plan.dataset, "has_masks", None) is False:
                raise _no_masks(settings)
        with ExitStack() as stack:
            staging: Path | None = None
            with together(world):
                if world.is_main:  # a failed run leaves nothing behind
                    inputs = input_folders(settings.data) + input_folders(settings.test)
                    staging = Path(stack.enter_context(staged_dir(
                        out_dir, command="evaluate", overwrite=overwrite or None,
                        inputs=inputs)))
                    save_splits(staging / "splits.json", plan.splits, dataset=plan.spec,
                                seed=settings.seed)
            spill = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="usdenoise-evaluate-")))
            with together(world):
                part = _measure_share(settings, denoisers, segmenter, plan, world, spill)
            parts = gather_to_main((part, None if world.is_main else _spilled(spill, world)),
                                   world)
            records: list[dict] | None = None
            with together(world):
                if staging is not None and parts is not None:
                    records = _write_merged(settings, denoisers, segmenter, plan, parts, spill,
                                            staging)
            records = all_gather(records, world)[0]
            with together(world):
                stack.close()  # rank 0 publishes the staged folder
    return records or []


def _no_masks(settings: EvaluationSettings) -> UsdenoiseError:
    return UsdenoiseError(f"--segmenter {settings.segmenter}: the images of "
                          f"{settings.test or settings.data} have no masks to measure "
                          "Dice and HC against")


def _noise_specs(settings: EvaluationSettings) -> list[str | None]:
    return [None] if settings.no_reference else list(settings.noises)


def _curve_denoiser(method: MethodSpec, denoiser: Denoiser,
                    settings: EvaluationSettings) -> Denoiser | None:
    """What the strength curves blend with the input: the method at strength 1 (itself when
    that is its setting); None where there is no curve (no strengths, the noisy input)."""
    if not settings.strengths or method.name == "noisy":
        return None
    if float(getattr(denoiser, "strength", 1.0)) == 1.0:
        return denoiser
    return make_denoiser(method.name, **{**method.params, "strength": 1.0})


@dataclass
class SharePart:
    """What one process measured, besides the per-image figures it spilled to files: the
    method times per (level, method), the ROI kinds met, and the example images (those at
    positions below `examples`) with their outputs."""

    seconds: dict[tuple[int, int], float] = field(default_factory=dict)
    roi_kinds: set[str] = field(default_factory=set)
    any_mask: bool = False
    clean: dict[int, torch.Tensor] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)
    outputs: dict[tuple[int, int], dict[int, torch.Tensor]] = field(default_factory=dict)


def _spill_name(rank: int, level: int, method: int) -> str:
    return f"r{rank}-{level}-{method}.jsonl"


def _spilled(spill: Path, world: World) -> dict[str, bytes]:
    """This process's spill files, to send to rank 0."""
    return {p.name: p.read_bytes() for p in spill.glob(f"r{world.rank}-*.jsonl")}


def _json_number(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _measure_share(settings: EvaluationSettings, denoisers: list[tuple[MethodSpec, Denoiser]],
                   segmenter: FrozenSegmenter | None, plan: ImagePlan, world: World,
                   spill: Path) -> SharePart:
    """Every image of this process's share at every noise level through every method; each
    image's figures go to one JSON-lines file per (level, method) in `spill`."""

    noises = _noise_specs(settings)
    models = [None if spec is None else make_noise(spec) for spec in noises]
    curve_makers = [_curve_denoiser(m, d, settings) for m, d in denoisers]
    positions = share(range(len(plan.indices)), world)
    loader = DataLoader(ImageShare(plan, positions), batch_size=None, shuffle=False,
                        num_workers=settings.workers, collate_fn=_as_is)
    part = SharePart()
    with ExitStack() as files, make_progress(enabled=None if world.is_main else False) as bar:
        spills = {(li, mi): files.enter_context(
                      open(spill / _spill_name(world.rank, li, mi), "w", encoding="utf-8"))
                  for li in range(len(noises)) for mi in range(len(denoisers))}
        task = bar.add_task("evaluate (images)", total=len(positions), status="")
        for position, sample in loader:
            bar.update(task, status=str(sample["id"]))
            mask = sample.get("mask")
            part.any_mask |= isinstance(mask, torch.Tensor)
            # ROIs for ENL/CNR/gCNR/SSI: the data set's mask, else one derived from the clean
            # image (the image itself with no reference), the same for every method and level
            roi = mask if mask is not None else derived_roi_mask(sample["image"])
            part.roi_kinds.add("mask" if mask is not None else
                               "otsu" if roi is not None else "none")
            rois = _rois(None if roi is None else roi[None])
            clean = sample["image"][None].float()
            if position < settings.examples:
                part.clean[position], part.ids[position] = clean, str(sample["id"])
            for li, spec in enumerate(noises):
                x = clean if spec is None else noisy_image(sample, models[li], settings.seed,
                                                           position)
                noise_name, level = split_noise_spec(spec) if spec else ("none", None)
                ctx = _context(x, sample, plan.class_names, segmenter)
                for mi, (method, denoiser) in enumerate(denoisers):
                    if (li, mi) not in part.seconds:
                        denoiser.denoise(x)  # warm-up: lazy imports, allocator, JIT caches
                        part.seconds[(li, mi)] = 0.0
                    start = time.perf_counter()
                    y = denoiser.denoise(x)
                    part.seconds[(li, mi)] += time.perf_counter() - start
                    values = _image_metrics(y, None if spec is None else clean,
                                            x if spec is None else clean, x, rois)
                    values.update(_real_scan_values(ctx, y, segmenter, sample,
                                                    identity=method.name == "noisy"))
                    row = {"method": method.label, "noise": noise_name, "level": level,
                           "id": sample["id"], "subject": sample["subject"], **values}
                    curve = None
                    if (maker := curve_makers[mi]) is not None:
                        full = y if maker is denoiser else maker.denoise(x)
                        curve = curve_values(full, ctx, sample, settings.strengths, segmenter)
                    spills[(li, mi)].write(json.dumps([row, curve], default=_json_number)
                                           + "\n")
                    if position < settings.examples:
                        part.outputs.setdefault((li, mi), {})[position] = y
            bar.advance(task)
    return part


def _merged_lines(spill: Path, level: int, method: int, size: int) -> Iterator[list]:
    """One (level, method)'s per-image lines of every process, back in image order: image
    i is line i // size of process i % size."""
    with ExitStack() as stack:
        handles = [stack.enter_context(open(spill / _spill_name(r, level, method),
                                            encoding="utf-8")) for r in range(size)]
        for i in itertools.count():
            line = handles[i % size].readline()
            if not line:
                return
            yield json.loads(line)


def _write_merged(settings: EvaluationSettings, denoisers: list[tuple[MethodSpec, Denoiser]],
                  segmenter: FrozenSegmenter | None, plan: ImagePlan,
                  parts: list[tuple[SharePart, dict[str, bytes] | None]], spill: Path,
                  out_dir: Path) -> list[dict]:
    """Rank 0: the records, curves and figures from every process's share, written."""

    for _part, files in parts[1:]:
        for name, data in (files or {}).items():
            (spill / name).write_bytes(data)
    shares = [part for part, _files in parts]
    if segmenter is not None and not any(part.any_mask for part in shares):
        raise _no_masks(settings)
    roi_kind = "+".join(sorted(set().union(*(part.roi_kinds for part in shares))))
    clean: dict[int, torch.Tensor] = {}
    ids: dict[int, str] = {}
    outputs: dict[tuple[int, int], dict[int, torch.Tensor]] = {}
    for part in shares:
        clean.update(part.clean)
        ids.update(part.ids)
        for key, images in part.outputs.items():
            outputs.setdefault(key, {}).update(images)
    shown = sorted(clean)
    count = len(plan.indices)
    records: list[dict] = []
    all_curves: list[dict] = []
    columns: list[str] = []  # of per_image.csv, as `records_to_csv` finds them
    noises = _noise_specs(settings)
    for li, spec in enumerate(noises):
        noise_name, level = split_noise_spec(spec) if spec else ("none", None)
        examples: dict[str, list[torch.Tensor]] = {}
        curves: dict[str, list[dict]] = {}
        level_records: list[dict] = []
        for mi, (method, denoiser) in enumerate(denoisers):
            rows, curve_rows = [], []
            for row, curve in _merged_lines(spill, li, mi, len(parts)):
                columns += [k for k in row if k not in columns
                            and not isinstance(row[k], dict | list)]
                rows.append(row)
                if curve is not None:
                    curve_rows.append(curve)
            record: dict[str, Any] = {
                "method": method.label, "noise": noise_name if spec else None, "level": level,
                "dataset": plan.name, "data": settings.test or settings.data,
                "n_images": count,
                "params": dict(denoiser.config), "seed": settings.seed, "roi": roi_kind,
            }
            if settings.test is not None:
                record["train_data"] = settings.data
            for metric in ("psnr", "ssim", "ms_ssim", "enl", "cnr", "gcnr", "epi", "ssi"):
                record[metric] = _mean([r.get(metric) for r in rows])
            record["seconds_per_image"] = sum(part.seconds.get((li, mi), 0.0)
                                              for part in shares) / count
            record.update(_real_scan_summary(rows, segmenter))
            if segmenter is not None:
                record["segmenter"] = segmenter.path
            level_records.append(record)
            if curve_rows:
                curves[method.label] = curve_means(curve_rows, settings.strengths)
            examples[method.label] = [outputs[(li, mi)][p] for p in shown]
        target = _matched_target(settings, level_records)
        _add_matched(level_records, curves, target)
        records += level_records
        all_curves.append({"dataset": plan.name, "noise": noise_name if spec else None,
                           "level": level, "matched_reduction": target, "curves": curves})
        if curves:
            name = plan.name if spec is None else f"{plan.name}_{_file_label(spec)}"
            save_tradeoff_curves(
                out_dir / "tradeoff" / f"{_file_label(name)}.png", curves, target=target,
                title=f"{plan.name}: " + (f"{noise_name} {level}" if spec
                                          else "original images"),
            )
        title = f"{noise_name} {level}" if spec else "original images"
        save_example_grid(
            out_dir / "examples" / f"{_file_label(spec or 'none')}.png",
            clean=None if spec is None else [clean[p] for p in shown],
            outputs=examples, ids=[ids[p] for p in shown], title=title,
        )
    write_text_atomic(out_dir / "curves.json", json.dumps(json_safe(all_curves), indent=2) + "\n")
    write_results(records, out_dir, title=f"usdenoise evaluate {plan.spec}")
    # the real-scan section goes above the image-quality tables (one `###` per level)
    head, sep, tables = (out_dir / "results.md").read_text(encoding="utf-8").partition("###")
    write_text_atomic(out_dir / "results.md", head + real_scan_markdown(records) + "\n"
                      "## Image-quality figures\n\n" + sep + tables)
    every_row = (row for li in range(len(noises)) for mi in range(len(denoisers))
                 for row, _curve in _merged_lines(spill, li, mi, len(parts)))
    write_csv_rows(out_dir / "per_image.csv", columns, every_row)
    return records


def _check_settings(settings: EvaluationSettings) -> None:
    """Every option checked before any data is loaded or any file is written."""

    if settings.split not in (None, "train", "val", "test", "all"):
        raise UsdenoiseError(f"--split {settings.split!r}: choose train, val, test or all")
    if settings.limit is not None and settings.limit < 1:
        raise UsdenoiseError(f"--limit {settings.limit}: must be at least 1")
    if settings.examples < 0:
        raise UsdenoiseError(f"--examples {settings.examples}: must be 0 or more")
    if settings.workers < 0:
        raise UsdenoiseError(f"--workers {settings.workers}: must be 0 or more")
    if not settings.methods:
        raise UsdenoiseError("--methods: give at least one method name")
    for alpha in settings.strengths:
        if not 0.0 <= float(alpha) <= 1.0:
            raise UsdenoiseError(f"--strengths {alpha}: each strength must be in [0, 1]")
    match = settings.match_reduction
    if isinstance(match, str):
        if match != "default":
            raise UsdenoiseError(f"--match-reduction {match!r}: give a fraction in (0, 1), "
                                 "e.g. 0.3, or 'default'")
    elif not 0.0 < float(match) < 1.0:
        raise UsdenoiseError(f"--match-reduction {match}: must be a fraction in (0, 1), "
                             "e.g. 0.3 for a speckle index 30 % lower")
    if not settings.no_reference:
        if not settings.noises:
            raise UsdenoiseError("--noise: give at least one noise level")
        for spec in settings.noises:
            make_noise(spec)  # unknown name or bad level: fail now, not after loading data
