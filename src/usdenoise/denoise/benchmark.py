"""Benchmark runner: every (method, noise, level) on the same noisy test images.

The noisy images are made once per noise level from a fixed seed, so every method sees exactly
the same input; timing covers the method alone, after one warm-up call.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usdenoise import metrics
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import staged_dir
from usdenoise.core.progress import make_progress
from usdenoise.data import load_dataset
from usdenoise.data.splits import save_splits, split_dataset
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.registry import make_denoiser
from usdenoise.noise.speckle import make_noise
from usdenoise.reporting.figures import save_example_grid
from usdenoise.reporting.tables import records_to_csv, write_results, write_text_atomic

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


def _test_samples(settings: EvaluationSettings, out_dir: Path) -> tuple[list[dict], str]:

    dataset = load_dataset(settings.data, size=settings.size)
    splits = split_dataset(dataset, seed=settings.seed)
    split = settings.split or ("all" if settings.no_reference else "test")
    indices = list(range(len(dataset))) if split == "all" else list(splits[split])
    if not indices:  # tiny data sets: fall back to everything rather than evaluating nothing
        indices = list(range(len(dataset)))
    if settings.limit is not None:
        indices = indices[: settings.limit]
    save_splits(out_dir / "splits.json", splits, dataset=settings.data, seed=settings.seed)
    samples = [dataset[i] for i in indices]
    return samples, getattr(dataset, "name", settings.data.split(":")[0])


def _noisy_versions(samples: list[dict], spec: str, seed: int) -> list[torch.Tensor]:
    """One seeded noisy copy per image; the seed depends on the image's position only."""

    noise = make_noise(spec)
    out = []
    for i, sample in enumerate(samples):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + i)
        out.append(noise(sample["image"][None].float(), generator=generator))
    return out


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


def _run_timed(denoiser: Denoiser, inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], float]:
    denoiser.denoise(inputs[0])  # warm-up: lazy imports, allocator, JIT caches
    outputs, seconds = [], 0.0
    for x in inputs:
        start = time.perf_counter()
        y = denoiser.denoise(x)
        seconds += time.perf_counter() - start
        outputs.append(y)
    return outputs, seconds / len(inputs)


def _image_metrics(
    output: torch.Tensor, clean: torch.Tensor | None, reference_for_epi: torch.Tensor,
    noisy: torch.Tensor, mask: torch.Tensor | None,
) -> dict[str, float | None]:

    values: dict[str, float | None] = {}
    if clean is not None:
        values["psnr"] = float(metrics.psnr(output, clean))
        values["ssim"] = float(metrics.ssim(output, clean))
        values["ms_ssim"] = float(metrics.ms_ssim(output, clean))
    values["epi"] = float(metrics.epi(output, reference_for_epi))
    values.update(enl=None, cnr=None, gcnr=None, ssi=None)
    if mask is not None and bool((mask > 0).any()) and bool((mask == 0).any()):
        try:
            head, background = metrics.head_background_rois(mask)
            values["enl"] = float(metrics.enl(output, head))
            values["cnr"] = float(metrics.cnr(output, head, background))
            values["gcnr"] = float(metrics.gcnr(output, head, background))
            values["ssi"] = float(metrics.ssi(noisy, output, head))
        except UsdenoiseError:  # ROI eroded away on a tiny image: leave the ROI metrics empty
            pass
    return values


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else None


def evaluate(settings: EvaluationSettings, out_dir: Path, *, overwrite: bool = False) -> list[dict]:
    """Run the benchmark and write results.json/csv/md, per_image.csv and example figures."""

    out_dir = Path(out_dir)
    _check_settings(settings)
    if (out_dir / "results.json").exists() and not overwrite:
        raise UsdenoiseError(f"{out_dir}: results.json already exists (use --overwrite)")
    denoisers = [(m, m.build()) for m in settings.methods]  # bad parameters fail before any work
    with staged_dir(out_dir) as staging:  # a failed run leaves nothing behind
        records, per_image = _evaluate_into(settings, denoisers, staging)
        write_results(records, staging, title=f"usdenoise evaluate {settings.data}")
        write_text_atomic(staging / "per_image.csv", records_to_csv(per_image))
    return records


def _check_settings(settings: EvaluationSettings) -> None:
    """Every option checked before any data is loaded or any file is written."""

    if settings.split not in (None, "train", "val", "test", "all"):
        raise UsdenoiseError(f"--split {settings.split!r}: choose train, val, test or all")
    if settings.limit is not None and settings.limit < 1:
        raise UsdenoiseError(f"--limit {settings.limit}: must be at least 1")
    if settings.examples < 0:
        raise UsdenoiseError(f"--examples {settings.examples}: must be 0 or more")
    if not settings.methods:
        raise UsdenoiseError("--methods: give at least one method name")
    if not settings.no_reference:
        if not settings.noises:
            raise UsdenoiseError("--noise: give at least one noise level")
        for spec in settings.noises:
            make_noise(spec)  # unknown name or bad level: fail now, not after loading data


def _evaluate_into(
    settings: EvaluationSettings, denoisers: list[tuple[MethodSpec, Denoiser]], out_dir: Path
) -> tuple[list[dict], list[dict]]:

    samples, dataset_name = _test_samples(settings, out_dir)
    noises: list[str | None] = [None] if settings.no_reference else list(settings.noises)
    # ROIs for ENL/CNR/gCNR/SSI: the data set's mask, else one derived from the clean image
    # (the image itself with no reference), the same for every method and noise level
    roi_masks: list[torch.Tensor | None] = []
    roi_kinds: set[str] = set()
    for sample in samples:
        mask = sample.get("mask")
        if mask is not None:
            roi_kinds.add("mask")
        else:
            mask = derived_roi_mask(sample["image"])
            roi_kinds.add("otsu" if mask is not None else "none")
        roi_masks.append(mask)
    roi_kind = "+".join(sorted(roi_kinds))
    records: list[dict] = []
    per_image: list[dict] = []
    with make_progress() as progress:
        task = progress.add_task("evaluate", total=len(noises) * len(denoisers), status="")
        for spec in noises:
            clean = [s["image"][None].float() for s in samples]
            noisy = clean if spec is None else _noisy_versions(samples, spec, settings.seed)
            noise_name, level = split_noise_spec(spec) if spec else ("none", None)
            examples: dict[str, list[torch.Tensor]] = {}
            for method, denoiser in denoisers:
                progress.update(task, status=f"{method.label} {spec or ''}")
                outputs, seconds = _run_timed(denoiser, noisy)
                rows = []
                for sample, x, y, c, mask in zip(samples, noisy, outputs, clean, roi_masks,
                                                 strict=True):
                    values = _image_metrics(
                        y, None if spec is None else c, x if spec is None else c, x,
                        None if mask is None else mask[None],
                    )
                    rows.append(values)
                    per_image.append({"method": method.label, "noise": noise_name, "level": level,
                                      "id": sample["id"], "subject": sample["subject"], **values})
                record: dict[str, Any] = {
                    "method": method.label, "noise": noise_name if spec else None, "level": level,
                    "dataset": dataset_name, "data": settings.data, "n_images": len(samples),
                    "params": dict(denoiser.config), "seed": settings.seed, "roi": roi_kind,
                }
                for key in ("psnr", "ssim", "ms_ssim", "enl", "cnr", "gcnr", "epi", "ssi"):
                    record[key] = _mean([r.get(key) for r in rows])
                record["seconds_per_image"] = seconds
                records.append(record)
                examples[method.label] = outputs[: settings.examples]
                progress.advance(task)
            title = f"{noise_name} {level}" if spec else "original images"
            save_example_grid(
                out_dir / "examples" / f"{_file_label(spec or 'none')}.png",
                clean=None if spec is None else clean[: settings.examples],
                outputs=examples,
                ids=[s["id"] for s in samples[: settings.examples]],
                title=title,
            )
    return records, per_image
