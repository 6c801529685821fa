"""`usdenoise study`: does denoising help the segmentation after it? One seeded command.

Steps (every trained model is a normal run folder under OUT/runs, so a study that stops
part-way continues where it was when run again with the same settings):

1. Split the data by subject (seeded); `--quick` keeps a subset of each part.
2. Protocol A segmenter: trained on the original images (or `--segmenter RUN` reused).
3. Trained arms: DiConvAEs with the arm's loss (the task losses use the frozen segmenter A).
4. Every input (original, + Rayleigh 0.25, + Rayleigh 0.5; speckle seeded per image) goes
   through every arm once; the results are kept in memory and reused by every step below.
5. Protocol A: segmenter A on each (input, arm). Protocol B: one segmenter per (input, arm)
   trained and tested on those images (the seed study's design).
6. `--tune-strength`: per (input, arm), the blend α · denoised + (1 − α) · input whose
   validation Dice (protocol A) is highest; the α → (PSNR, Dice) curve is written and the
   chosen α is tested as arm `<arm>@tuned`.
7. `study_report.summarise` turns the per-image rows into means with subject bootstrap
   intervals and paired tests against `none`, then writes study.json/csv/md and figures.

Metrics are measured as `segment evaluate` does: the prediction is brought back to each
image's own size by nearest neighbour and compared with the original mask there.

`--test DATA2`: every model is trained (and α tuned) on DATA as above, and the test rows are
measured on DATA2's images instead of DATA's test split (all of them, at most the test count
of `--max-images`), with the same inputs and arms; classes are matched by name as in
`segment evaluate --test` (HC18's head against PSFHS's fetal head, the pubic symphysis
counted as background). study.json's settings and context (`test_data`) and a note in
study.md name the test data.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from usdenoise.checkpoint import load_segmenter
from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import blend
from usdenoise.data import load_dataset
from usdenoise.data.splits import load_splits, save_splits, split_dataset
from usdenoise.data.transforms import resize_mask
from usdenoise.denoise.classic import CLASSIC
from usdenoise.denoise.files import denoise_in_worker, init_worker
from usdenoise.denoise.registry import make_denoiser
from usdenoise.metrics import psnr
from usdenoise.metrics.geometry import head_circumference, head_classes
from usdenoise.metrics.segmentation import dice_per_class, image_metrics, nanmean
from usdenoise.noise.speckle import make_noise
from usdenoise.reporting.figures import safe_name
from usdenoise.segmentation.class_mapping import ClassMapping, map_classes
from usdenoise.segmentation.pipeline import InputPipeline
from usdenoise.segmentation.predict import predict
from usdenoise.study.arms import Arm, select_arms
from usdenoise.study.report import TUNED_SUFFIX, write_study
from usdenoise.training.config import TrainConfig
from usdenoise.training.loop import fit
from usdenoise.training.state import STATE_FILE
from usdenoise.training.tasks import SegmentTask

CLASSIC_NAMES = frozenset(CLASSIC)
INPUTS = ("none", "rayleigh:0.25", "rayleigh:0.5")
PROTOCOLS = ("A", "B")
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
# --quick: small images, a subset, two inputs, few epochs (minutes on a 2-core CPU)
QUICK = {"size": 64, "segmenter_epochs": 20, "denoiser_epochs": 25, "max_images": (96, 24, 32),
         "inputs": ["none", "rayleigh:0.5"]}
FULL = {"size": 128, "segmenter_epochs": 40, "denoiser_epochs": 40, "max_images": None,
        "inputs": list(INPUTS)}
CPU_DENOISER_OPTIONS = {"shuffle": 2}  # space-to-depth: ~7x faster DiConvAE training on CPU


@dataclass
class StudySettings:
    """Everything the study depends on; stored in study.json so a run can be repeated."""

    data: str = "phantom"
    quick: bool = False
    arms: list[str] | None = None  # None: every arm (study_arms.default_arms)
    inputs: list[str] | None = None  # None: all three (quick: original and Rayleigh 0.5)
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    size: int | None = None  # images resized to size x size for the networks
    segmenter_arch: str = "unet"
    segmenter_options: dict[str, Any] = field(default_factory=dict)
    segmenter_epochs: int | None = None
    denoiser_epochs: int | None = None
    denoiser_noise: str = "rayleigh:0.05-0.6"
    denoiser_options: dict[str, Any] | None = None  # None: shuffle=2 on CPU, none on GPU
    segmenter: str | None = None  # protocol A segmenter run to reuse
    vgg_weights: str | None = None
    tune_strength: bool = False
    strengths: list[float] = field(default_factory=lambda: list(STRENGTHS))
    max_images: tuple[int, int, int] | None = None  # train, val, test subset
    batch_size: int = 16
    seed: int = 0
    resamples: int = 2000
    examples: int = 3
    device: str = "auto"
    workers: int | None = None  # processes for the classic filters; None: the CPU count
    #: test on this data set instead of DATA's test split (models trained on DATA)
    test: str | None = None

    def resolved(self) -> StudySettings:
        """Defaults of the chosen mode filled in, and the values checked."""
        base = QUICK if self.quick else FULL
        out = replace(self)
        for key in ("size", "segmenter_epochs", "denoiser_epochs", "max_images", "inputs"):
            if getattr(out, key) is None:
                value = base[key]
                setattr(out, key, list(value) if isinstance(value, list) else value)
        if out.workers is None:
            out.workers = max(1, min(os.cpu_count() or 1, 8))
        out.device = resolve_auto(out.device)
        if out.denoiser_options is None:
            out.denoiser_options = dict(CPU_DENOISER_OPTIONS) if out.device == "cpu" else {}
        bad = [p for p in out.protocols if p not in PROTOCOLS]
        if bad or not out.protocols:
            raise UsdenoiseError(f"--protocols {','.join(out.protocols)}: choose A, B or A,B")
        if not out.inputs:
            raise UsdenoiseError("--inputs: give at least one input (none, rayleigh:0.5, ...)")
        if any(not 0.0 <= a <= 1.0 for a in out.strengths) or not out.strengths:
            raise UsdenoiseError(f"--strengths {out.strengths}: values must lie in [0, 1]")

        for spec in [*(i for i in out.inputs if i != "none"), out.denoiser_noise]:
            make_noise(spec)  # a bad speckle spec fails here, before any training
        if out.tune_strength and "A" not in out.protocols:
            raise UsdenoiseError("--tune-strength chooses α with the protocol A segmenter: "
                                 "keep protocol A")
        for key in ("size", "segmenter_epochs", "denoiser_epochs", "batch_size", "resamples",
                    "workers"):
            if int(getattr(out, key)) < 1:
                raise UsdenoiseError(f"study: {key} must be at least 1")
        return out


Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# data and splits


@dataclass
class StudyData:
    """The data set at network size, the same images at their own size, and the split."""

    spec: str
    dataset: Any  # resized (network input, training)
    native: Any  # own size (masks and pixel sizes for the metrics)
    splits: dict[str, list[int]]
    class_names: tuple[str, ...]
    _cache: dict[tuple[bool, int], dict[str, Any]] = field(default_factory=dict)
    #: test data with other class names: the models' classes matched to its own
    mapping: ClassMapping | None = None

    @property
    def measured_names(self) -> tuple[str, ...]:
        """Class names of the maps the metrics compare (the models' when mapped)."""
        return self.mapping.names if self.mapping is not None else self.class_names

    def truth(self, mask: torch.Tensor) -> torch.Tensor:
        return mask if self.mapping is None else self.mapping.truth(mask)

    def prediction(self, pred: torch.Tensor) -> torch.Tensor:
        return pred if self.mapping is None else self.mapping.prediction(pred)

    def sample(self, index: int, *, native: bool = False) -> dict[str, Any]:
        """A sample decoded once: every arm and protocol measures the same test images."""
        key = (native, index)
        if key not in self._cache:
            self._cache[key] = (self.native if native else self.dataset)[index]
        return self._cache[key]


def load_study_data(settings: StudySettings) -> StudyData:

    dataset = load_dataset(settings.data, size=settings.size)
    native = load_dataset(settings.data)
    if len(dataset) == 0:
        raise UsdenoiseError(f"{settings.data}: no images")
    first = dataset[0]
    if not isinstance(first.get("mask"), torch.Tensor):
        raise UsdenoiseError(f"{settings.data}: images have no masks; the study segments them "
                             "(hc18:, psfhs:, zenodo:, phantom or folder: with masks/)")
    splits = split_dataset(dataset, seed=settings.seed)
    if settings.max_images is not None:
        splits = {part: list(splits[part])[:n]
                  for part, n in zip(("train", "val", "test"), settings.max_images, strict=True)}
    for part in ("train", "val", "test"):
        if not splits.get(part):
            raise UsdenoiseError(f"{settings.data}: the {part} split is empty (too few subjects "
                                 "for a study)")
    if len(splits["train"]) < settings.batch_size:
        raise UsdenoiseError(f"{settings.data}: {len(splits['train'])} training images, fewer "
                             f"than the batch size {settings.batch_size}")
    names = tuple(str(n) for n in dataset.class_names)
    return StudyData(settings.data, dataset, native, splits, names)


def load_test_data(settings: StudySettings, data: StudyData) -> StudyData:
    """The data the test rows are measured on: `data` itself, or with `--test` all images of
    that data set (at most the test count of `max_images`), classes matched by name to the
    models' (those of `data`)."""
    if settings.test is None or settings.test == settings.data:
        return data
    dataset = load_dataset(settings.test, size=settings.size)
    if len(dataset) == 0:
        raise UsdenoiseError(f"--test {settings.test}: no images")
    if not isinstance(dataset[0].get("mask"), torch.Tensor):
        raise UsdenoiseError(f"--test {settings.test}: images have no masks; the study "
                             "segments them")
    names = tuple(str(n) for n in dataset.class_names)
    mapping = map_classes(data.class_names, names, data_label=settings.test,
                          model_label=f"trained on {settings.data}")
    ids = list(range(len(dataset)))[: settings.max_images[2] if settings.max_images else None]
    return StudyData(settings.test, dataset, load_dataset(settings.test), {"test": ids}, names,
                     mapping=None if mapping.identity else mapping)


# ---------------------------------------------------------------------------------------------
# training (every model is a resumable run folder)


def _train(config: Any, log: Log, what: str, *, task: Any = None) -> Path:
    """fit() in `config.out`; an existing run continues (or returns at once when finished)."""

    run = Path(config.out)
    if (run / STATE_FILE).exists():
        config.resume = str(run)
    started = time.perf_counter()
    log(f"training {what} ({config.epochs} epochs) in {run}")
    best = fit(config, task=task)
    log(f"  done in {time.perf_counter() - started:.0f} s")
    return best


def _write_splits(run: Path, data: StudyData, seed: int) -> None:
    """The study's (possibly reduced) split, so every run trains on the same images."""

    path = run / "splits.json"
    wanted = {k: data.splits[k] for k in ("train", "val", "test")}
    if path.exists():
        if load_splits(path, dataset=data.dataset) != wanted:
            raise UsdenoiseError(f"{path}: this run was trained on another split; use a new "
                                 "--out for a study with other data or seed")
        return
    run.mkdir(parents=True, exist_ok=True)
    save_splits(path, wanted, dataset=data.dataset, seed=seed)


def segmenter_config(settings: StudySettings, data: StudyData, run: Path):
    assert settings.segmenter_epochs is not None and settings.size is not None  # resolved()
    _write_splits(run, data, settings.seed)
    return TrainConfig(task="segment", data=data.spec, out=str(run), arch=settings.segmenter_arch,
                       preset="fast", model=dict(settings.segmenter_options), loss="dice+ce",
                       noise="none", epochs=int(settings.segmenter_epochs),
                       batch_size=settings.batch_size, crop=int(settings.size),
                       image_size=int(settings.size), cache=True, seed=settings.seed,
                       device=settings.device, progress=None)


def denoiser_config(settings: StudySettings, data: StudyData, arm: Arm, run: Path,
                    segmenter: Path | None):
    assert settings.denoiser_epochs is not None and settings.size is not None  # resolved()
    _write_splits(run, data, settings.seed)
    extra: dict[str, Any] = {"segmenter": str(segmenter)} if "segmenter" in arm.needs else {}
    return TrainConfig(task="denoise", data=data.spec, out=str(run), arch="diconvae",
                       preset="fast", model=dict(settings.denoiser_options or {}),
                       loss=str(arm.loss), noise=settings.denoiser_noise,
                       epochs=int(settings.denoiser_epochs), batch_size=settings.batch_size,
                       crop=int(settings.size), image_size=int(settings.size), cache=True,
                       seed=settings.seed, device=settings.device, progress=None,
                       vgg_weights=settings.vgg_weights, **extra)


class CachedInputs:
    """An `InputPipeline` stand-in serving images the study already processed."""

    active = True

    def __init__(self, images: dict[int, torch.Tensor], noise: str, arm: str) -> None:
        self.images, self.noise_spec, self.label = images, noise, arm

    def describe(self) -> dict[str, Any]:
        return {"noise": self.noise_spec, "denoise": self.label, "denoise_params": {}}

    def __call__(self, image: torch.Tensor, index: int) -> torch.Tensor:
        return self.images[index]


def train_protocol_b(settings: StudySettings, data: StudyData, run: Path,
                     images: dict[int, torch.Tensor], noise: str, arm: str, log: Log) -> Path:
    """A segmenter trained on the (input, arm) images themselves."""

    config = segmenter_config(settings, data, run)
    task = SegmentTask(config, pipeline=CachedInputs(images, noise, arm))
    return _train(config, log, f"protocol B segmenter for {noise} / {arm}", task=task)


# ---------------------------------------------------------------------------------------------
# images through inputs and arms


def add_speckle(image: torch.Tensor, noise: str, index: int, seed: int) -> torch.Tensor:
    """The same seeded speckle `segment train --noise` draws for image `index`."""

    return InputPipeline(noise=noise, seed=seed)(image, index)


def build_arm_denoiser(arm: Arm, trained: dict[str, Path], device: str):

    device = "cuda" if device.startswith("cuda") else "cpu"
    if arm.trained:
        return make_denoiser("network", checkpoint=str(trained[arm.name]), device=device)
    if arm.method is None:
        return None
    if arm.method in ("default", "network"):
        return make_denoiser(arm.method, **arm.params, device=device)
    return make_denoiser(arm.method, **arm.params)


def run_arm(denoiser: Any, images: dict[int, torch.Tensor], *, batch: int = 16,
            workers: int = 1, method: tuple[str, dict[str, Any]] | None = None
            ) -> dict[int, torch.Tensor]:
    """Denoise each image once, in batches (networks gain from them). A classic filter
    (`method` = (name, params)) runs in `workers` processes: BM3D takes most of a CPU study."""
    if denoiser is None:
        return dict(images)
    keys = list(images)
    chunks = [keys[start:start + batch] for start in range(0, len(keys), batch)]
    stacks = (torch.stack([images[k] for k in chunk]) for chunk in chunks)
    if method is not None and workers > 1:
        from concurrent.futures import ProcessPoolExecutor


        with ProcessPoolExecutor(workers, initializer=init_worker,
                                 initargs=method) as pool:
            results = list(pool.map(denoise_in_worker, stacks))
    else:
        results = [denoiser.denoise(x).cpu() for x in stacks]
    out: dict[int, torch.Tensor] = {}
    for chunk, y in zip(chunks, results, strict=True):
        out.update(zip(chunk, y, strict=True))
    return out


# ---------------------------------------------------------------------------------------------
# measuring


@torch.no_grad()
def segment_rows(model: torch.nn.Module, data: StudyData, images: dict[int, torch.Tensor],
                 clean: dict[int, torch.Tensor], *, native: bool = True) -> list[dict[str, Any]]:
    """Per-image figures of a segmenter on processed images.

    native=True: metrics at each image's own size (as `segment evaluate`); False: at network
    size, Dice and HC only (the cheap form the strength search uses on validation images).
    """

    rows = []
    keys = list(images)
    names = data.measured_names
    heads = head_classes(names)
    for start in range(0, len(keys), 32):
        chunk = keys[start:start + 32]
        x = torch.stack([images[k] for k in chunk])
        preds = predict(model, x)
        quality = psnr(x.clamp(0, 1), torch.stack([clean[k] for k in chunk]))
        for k, pred, q in zip(chunk, preds, quality, strict=True):
            if native:
                sample = data.sample(k, native=True)
                full = data.prediction(resize_mask(pred, tuple(sample["mask"].shape[-2:])))
                values = image_metrics(full, data.truth(sample["mask"]), class_names=names,
                                       spacing_mm=sample.get("spacing_mm"),
                                       hc_mm=sample.get("hc_mm"))
                unit = "mm" if sample.get("spacing_mm") is not None else "px"
                values["hd95"] = values.get(f"hd95_{unit}")
                values["hd95_unit"] = unit
            else:
                sample = data.sample(k)
                pred = data.prediction(pred)
                dice = dice_per_class(pred, data.truth(sample["mask"]), len(names))
                values = {"dice": nanmean(dice[1:])}  # foreground classes, as image_metrics
                hc_error = None
                if sample.get("spacing_mm") is not None and sample.get("hc_mm") is not None:
                    hc = head_circumference(pred, sample["spacing_mm"], classes=heads)
                    hc_error = None if hc is None else abs(hc - sample["hc_mm"])
                values["hc_abs_error_mm"] = hc_error
            # PSNR of an unchanged image against itself is infinite: no figure, not a number
            q = float(q) if math.isfinite(float(q)) else None
            rows.append({"index": k, "id": str(sample["id"]), "subject": sample.get("subject"),
                         "psnr": q, **values})
    return rows


def tune_strength(model: torch.nn.Module, data: StudyData, noisy: dict[int, torch.Tensor],
                  denoised: dict[int, torch.Tensor], clean: dict[int, torch.Tensor],
                  strengths: Sequence[float]) -> tuple[float, list[dict[str, Any]]]:
    """α with the best mean validation Dice (ties: lower HC error, then the larger α) and the
    whole α → (PSNR, Dice, HC error) curve."""

    curve: list[dict[str, Any]] = []
    for alpha in strengths:
        blended = {k: blend(denoised[k], noisy[k], alpha) for k in noisy}
        rows = segment_rows(model, data, blended, clean, native=False)
        curve.append({"alpha": float(alpha), "val_psnr": nanmean([r["psnr"] for r in rows]),
                      "val_dice": nanmean([r["dice"] for r in rows]),
                      "val_hc_abs_error_mm": nanmean([r["hc_abs_error_mm"] for r in rows])})

    def score(point: dict[str, Any]) -> tuple[float, float, float]:
        hc = point["val_hc_abs_error_mm"]
        return (round(point["val_dice"] or 0.0, 4), -(hc if hc is not None else 0.0),
                point["alpha"])

    best = max(curve, key=score)
    return best["alpha"], curve


# ---------------------------------------------------------------------------------------------
# the study


def run_study(settings: StudySettings, out_dir: str | Path, *, log: Log = print,
              overwrite: bool = False) -> dict[str, Any]:
    """Run every step; returns the study document also written to OUT/study.json."""

    started = time.perf_counter()
    say = log
    log = lambda text: say(f"[{time.perf_counter() - started:6.0f} s] {text}")  # noqa: E731
    out_dir = Path(out_dir)
    if (out_dir / "study.json").exists() and not overwrite:
        raise UsdenoiseError(f"{out_dir}: study.json already exists (use --overwrite; trained "
                             "runs under runs/ are reused)")
    settings = settings.resolved()
    # filled in by resolved()
    assert settings.inputs is not None and settings.size is not None
    assert settings.workers is not None
    arms, notes = select_arms(settings.arms, vgg_weights=settings.vgg_weights)
    data = load_study_data(settings)
    test_data = load_test_data(settings, data)
    foreign = test_data is not data  # --test: the test rows are measured on other data
    test_ids, val_ids = test_data.splits["test"], data.splits["val"]
    if foreign:
        notes.append(f"test rows: {len(test_ids)} images of {test_data.spec}, every model "
                     f"trained (and α chosen) on {data.spec}")
        if test_data.mapping is not None:
            notes += test_data.mapping.notes(test_data.spec)
    runs = out_dir / "runs"
    log(f"study on {data.spec}: {len(data.splits['train'])}/{len(data.splits['val'])}/"
        f"{len(test_ids)} train/val/test images"
        + (f" (test: {test_data.spec})" if foreign else "") + f" at {settings.size} px; arms "
        f"{', '.join(a.name for a in arms)}; inputs {', '.join(settings.inputs)}")

    # protocol A segmenter: on the original images
    if settings.segmenter:
        seg_a_path = Path(settings.segmenter).resolve()
        notes.append(f"protocol A segmenter reused from {seg_a_path}")
    else:
        seg_a_path = _train(segmenter_config(settings, data, runs / "segmenter-A"), log,
                            "protocol A segmenter (original images)").resolve()
    seg_a, seg_sidecar = load_segmenter(seg_a_path, device=settings.device,
                                        option="--segmenter")
    _check_segmenter(seg_sidecar, data, seg_a_path, settings.size)

    trained: dict[str, Path] = {}
    for arm in arms:
        if arm.trained:
            run = runs / f"denoiser-{arm.name}"
            trained[arm.name] = _train(
                denoiser_config(settings, data, arm, run, seg_a_path), log, f"arm {arm.name}")

    # every image through every input and arm, once: the study data's ("study") and, with
    # --test, the test data's ("test"); protocol B trains on the processed images too, A
    # needs validation and test only
    parts = ("train", "val", "test") if "B" in settings.protocols else ("val", "test")
    pools = {"study": (data, sorted({i for part in parts if not (foreign and part == "test")
                                     for i in data.splits[part]}))}
    if foreign:
        pools["test"] = (test_data, list(test_ids))
    test = "test" if foreign else "study"  # the pool the test rows come from
    clean: dict[str, dict[int, torch.Tensor]] = {}
    noisy: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for name, (pool, ids) in pools.items():
        clean[name] = {i: pool.sample(i)["image"].float() for i in ids}
        noisy[name] = {s: (dict(clean[name]) if s == "none" else
                           {i: add_speckle(clean[name][i], s, i, settings.seed) for i in ids})
                       for s in settings.inputs}
    count = sum(len(ids) for _, ids in pools.values())
    processed: dict[str, dict[tuple[str, str], dict[int, torch.Tensor]]] = {n: {} for n in pools}
    seconds: dict[str, float] = {}
    for arm in arms:
        denoiser = build_arm_denoiser(arm, trained, settings.device)
        for s in settings.inputs:
            log(f"denoising {count} images: {s} / {arm.name}")
            t0 = time.perf_counter()
            classic = (arm.method, arm.params) if arm.method in CLASSIC_NAMES else None
            for name in pools:
                processed[name][s, arm.name] = run_arm(denoiser, noisy[name][s], method=classic,
                                                       batch=4 if classic else 16,
                                                       workers=settings.workers)
            seconds[arm.name] = seconds.get(arm.name, 0.0) + time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    chosen: dict[tuple[str, str], float] = {}

    def add(protocol: str, s: str, arm: str, alpha: float, model, images) -> None:
        for row in segment_rows(model, test_data, {i: images[i] for i in test_ids},
                                clean[test]):
            rows.append({"protocol": protocol, "input": s, "arm": arm, "strength": alpha, **row})

    if "A" in settings.protocols:
        for s in settings.inputs:
            for arm in arms:
                log(f"protocol A: {s} / {arm.name}")
                add("A", s, arm.name, 1.0, seg_a, processed[test][s, arm.name])
        if settings.tune_strength:
            for s in settings.inputs:
                for arm in arms:
                    if arm.name == "none":
                        continue
                    log(f"strength search (validation): {s} / {arm.name}")
                    den = processed["study"][s, arm.name]
                    alpha, curve = tune_strength(
                        seg_a, data, {i: noisy["study"][s][i] for i in val_ids},
                        {i: den[i] for i in val_ids}, clean["study"], settings.strengths)
                    chosen[s, arm.name] = alpha
                    curves += [{"input": s, "arm": arm.name, **point} for point in curve]
                    den = processed[test][s, arm.name]
                    tuned = {i: blend(den[i], noisy[test][s][i], alpha) for i in test_ids}
                    add("A", s, f"{arm.name}{TUNED_SUFFIX}", alpha, seg_a, tuned)
    if "B" in settings.protocols:
        for s in settings.inputs:
            for arm in arms:
                if s == "none" and arm.name == "none" and not settings.segmenter:
                    model = seg_a  # trained on the original images: protocol A's segmenter
                else:
                    run = runs / f"segmenter-B-{safe_name(s)}-{arm.name}"
                    best = train_protocol_b(settings, data, run,
                                            processed["study"][s, arm.name], s, arm.name, log)
                    model, _ = load_segmenter(best, device=settings.device)
                add("B", s, arm.name, 1.0, model, processed[test][s, arm.name])

    context = {
        "settings": asdict(settings), "arms": [asdict(a) for a in arms], "notes": notes,
        "class_names": list(data.class_names),
        "splits": {**{k: len(v) for k, v in data.splits.items()}, "test": len(test_ids)},
        "test_data": test_data.spec,
        "segmenter_a": str(seg_a_path), "denoisers": {k: str(v) for k, v in trained.items()},
        "strengths_chosen": [{"input": s, "arm": a, "alpha": v}
                             for (s, a), v in chosen.items()],
        "denoise_seconds_per_image": {k: v / max(1, count * len(settings.inputs))
                                      for k, v in seconds.items()},
    }
    if test_data.mapping is not None:
        context["class_map"] = test_data.mapping.describe()
    examples = _example_panels(settings, test_data, seg_a, processed[test], arms, test_ids)
    document = write_study(out_dir, rows=rows, curves=curves, context=context,
                           examples=examples, seed=settings.seed, resamples=settings.resamples)
    log(f"study finished in {time.perf_counter() - started:.0f} s: {out_dir / 'study.md'}")
    return document


def _check_segmenter(sidecar: dict[str, Any], data: StudyData, path: Path, size: int) -> None:
    meta = sidecar.get("meta", {})
    names = tuple(meta.get("class_names") or ())
    if names and names != data.class_names:
        raise UsdenoiseError(f"--segmenter {path}: predicts classes {', '.join(names)}, the "
                             f"data has {', '.join(data.class_names)}")
    trained_size = meta.get("image_size")
    if trained_size is not None and int(trained_size) != int(size):
        raise UsdenoiseError(f"--segmenter {path}: trained at {trained_size} px, the study runs "
                             f"at --size {size}")


def _example_panels(settings, data, model, processed, arms, test_ids):
    """(image id, true mask, [(input, arm, image, prediction)]) per shown test image, with
    the protocol A segmenter."""

    panels = []
    for i in test_ids[: settings.examples]:
        mask = data.truth(data.sample(i)["mask"])  # in the models' classes (--test)
        tiles = []
        for s in settings.inputs:
            for arm in arms:
                image = processed[s, arm.name][i]
                pred = data.prediction(predict(model, image[None])[0])
                tiles.append((s, arm.name, image, pred))
        panels.append((str(data.sample(i)["id"]), mask, tiles))
    return panels
