"""Training settings as one dataclass; a TOML file with the same keys loads into it.

```toml
# run.toml: every key is optional; the [model] table goes to build_network as overrides
data = "phantom"
arch = "diconvae"
preset = "fast"
loss = "l1+msssim"
noise = "rayleigh:0.1-0.75"
epochs = 50
batch_size = 16
crop = 96
[model]
channels = 16
```
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usdenoise.core.errors import UsdenoiseError
from usdenoise.training.state import run_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI
    import tomli as tomllib

SCHEDULES = ("cosine", "none")
TASKS = ("denoise", "segment", "selfsupervised")
#: `self_supervised` methods (training.tasks.selfsupervised): Recorrupted-to-Recorrupted,
#: Neighbor2Neighbor
SELF_SUPERVISED = ("r2r", "nb2nb")

# settings that may differ between a run and its `--resume` (they do not change the maths)
RESUMABLE_CHANGES = frozenset(
    {"epochs", "out", "resume", "device", "workers", "progress", "cache"}
)


#: what a denoise run learns to output (TrainConfig.target)
TARGETS = ("clean", "noise_free")


@dataclass
class TrainConfig:
    """Everything `fit()` needs; the defaults follow the study (Adam, lr 1e-3)."""

    data: str = "phantom"  # data set spec: phantom, hc18:PATH, folder:PATH, ...
    out: str = "run"  # run folder: checkpoints, metrics.csv, loss curve, splits.json
    task: str = "denoise"  # what is trained; one entry of train.TASKS
    num_classes: int | None = None  # segment: classes incl. background; None: the data set's
    denoise: str | None = None  # segment: denoiser applied to every input image first
    denoise_params: dict[str, Any] = field(default_factory=dict)  # its parameters
    arch: str = "diconvae"
    preset: str | None = "fast"
    model: dict[str, Any] = field(default_factory=dict)  # build_network overrides
    loss: str = "l1+msssim"
    noise: str = "rayleigh:0.1-0.75"  # a range draws one level per image
    # denoise: the share of samples trained on their own (native) speckle instead, by
    # recorruption (input y + a·n, target y − n/a; n correlated Gaussian noise of the level
    # the image shows, widths native_axial x native_lateral px; Pang et al., CVPR 2021)
    native: float = 0.0
    native_axial: float = 1.8
    native_lateral: float = 3.3
    native_alpha: float = 0.5
    # denoise: shrink half the training batches by a random factor in [zoom, 1] per axis
    # (area interpolation) so the network also sees finer speckle grain: scans resized before
    # denoising (the 256 x 256 benchmark), scanners with a finer PSF. None: native size only
    zoom: float | None = None
    # denoise, level-conditioned networks: label training pairs with the level the noisy
    # input shows (what inference measures) instead of the level of the added speckle
    level_shown: bool = False
    # denoise, level-conditioned networks: the share of supervised samples whose added
    # speckle is scaled over the image by a smooth random field in [0.3, 3], the level map
    # scaled with it, so the network learns maps that vary (what `--param smooth` feeds it)
    level_field: float = 0.0
    # denoise: start from this denoiser checkpoint's weights (fine-tuning; "default" is the
    # shipped model); its architecture and model settings must equal this run's
    init: str | None = None
    # denoise: what the network learns to output: "clean" (the image the speckle was added
    # to) or "noise_free" (that image through the noise model's image formation without the
    # speckle, e.g. blurred by the physics PSF: what a self-supervised denoiser can reach)
    target: str = "clean"
    epochs: int = 50
    batch_size: int = 16  # global: split evenly over torchrun processes
    crop: int = 96  # square random crop (train) / centre crop (validation), pixels
    image_size: int | None = None  # passed to load_dataset(size=...); None keeps native
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    clip_grad: float | None = None  # max gradient L2 norm; None: no clipping
    patience: int | None = None  # stop after this many epochs without a better val loss
    amp: bool | None = None  # bf16 autocast; None: on for CUDA, off for CPU
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    workers: int = 0  # DataLoader worker processes
    cache: bool = False  # keep decoded (resized) images in memory: small data sets, many epochs
    seed: int = 0
    vgg_weights: str | None = None  # local VGG16 weights for the perceptual loss
    segmenter: str | None = None  # frozen segmenter run for the task / taskperceptual losses
    # self-supervised training on noisy images only (task "selfsupervised"; see
    # training.tasks.selfsupervised): method r2r or nb2nb; the ss_* settings are its options
    self_supervised: str | None = None
    ss_level: float | None = None  # r2r: speckle std (display units); None: estimated
    ss_axial: float | None = None  # r2r: PSF width along depth, px; None: estimated
    ss_lateral: float | None = None  # r2r: PSF width laterally, px; None: estimated
    ss_alpha: float = 0.5  # r2r: recorruption strength (input y + a·n, target y - n/a)
    ss_stride: int = 4  # nb2nb: cell size in px, larger than the speckle grain
    ss_gamma: float = 2.0  # nb2nb: weight of the regulariser
    limit: int | None = None  # at most this many batches per epoch (train and validation)
    sync_batchnorm: bool = True  # SyncBatchNorm under DDP on CUDA
    progress: bool | None = None  # progress bar; None: only when stderr is a terminal
    resume: str | None = None  # run folder to continue; its settings must match

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, *, where: str = "config") -> None:
        """Range checks that apply however the config was made (TOML, CLI, Python)."""
        _check_types(self, where=where)
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "crop": self.crop}
        for key, value in positive.items():
            if value < 1:
                raise UsdenoiseError(f"{where}: {key} must be at least 1, got {value}")
        for key in ("image_size", "patience", "limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UsdenoiseError(f"{where}: {key} must be at least 1, got {value}")
        if not 0.0 <= self.native <= 1.0:
            raise UsdenoiseError(f"{where}: native must be in [0, 1], got {self.native}")
        if self.native_axial < 0 or self.native_lateral < 0 or not self.native_alpha > 0:
            raise UsdenoiseError(f"{where}: native_axial/native_lateral must be >= 0 and "
                                 f"native_alpha > 0")
        if self.native and self.task != "denoise":
            raise UsdenoiseError(f"{where}: native is a setting of task 'denoise'")
        if self.zoom is not None and not 0.1 <= self.zoom <= 1.0:
            raise UsdenoiseError(f"{where}: zoom must be in [0.1, 1], got {self.zoom}")
        if not 0.0 <= self.level_field <= 1.0:
            raise UsdenoiseError(f"{where}: level_field must be in [0, 1], got {self.level_field}")
        if self.level_field and not self.model.get("level_input"):
            raise UsdenoiseError(f"{where}: level_field needs a level-conditioned network "
                                 "(model = {level_input = true})")
        for key in ("zoom", "init", "level_shown", "level_field"):
            if getattr(self, key) not in (None, False) and self.task != "denoise":
                raise UsdenoiseError(f"{where}: {key} is a setting of task 'denoise'")
        if self.target not in TARGETS:
            raise UsdenoiseError(f"{where}: target must be one of {', '.join(TARGETS)}, "
                                 f"got {self.target!r}")
        if self.target != "clean" and (self.task != "denoise" or self.native):
            raise UsdenoiseError(f"{where}: target {self.target!r} is a setting of task "
                                 "'denoise' without native")
        if not self.lr > 0:
            raise UsdenoiseError(f"{where}: lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise UsdenoiseError(f"{where}: weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise UsdenoiseError(f"{where}: clip_grad must be positive, got {self.clip_grad}")
        if self.workers < 0:
            raise UsdenoiseError(f"{where}: workers must be >= 0, got {self.workers}")
        if self.schedule not in SCHEDULES:
            raise UsdenoiseError(
                f"{where}: schedule {self.schedule!r} is not one of {list(SCHEDULES)}"
            )
        if self.task not in TASKS:
            raise UsdenoiseError(f"{where}: task {self.task!r} is not one of {list(TASKS)}")
        if self.num_classes is not None and self.num_classes < 2:
            raise UsdenoiseError(
                f"{where}: num_classes must be at least 2 (background and one class), "
                f"got {self.num_classes}"
            )
        if self.task != "segment" and (self.num_classes is not None or self.denoise is not None
                                       or self.denoise_params):
            raise UsdenoiseError(
                f"{where}: num_classes, denoise and denoise_params are settings of task "
                f"'segment', not {self.task!r}"
            )
        if self.denoise is None and self.denoise_params:
            raise UsdenoiseError(f"{where}: denoise_params given without a denoise method")
        if self.segmenter is not None:
            if self.task != "denoise":
                raise UsdenoiseError(f"{where}: segmenter (for the task losses) is a setting of "
                                     f"task 'denoise', not {self.task!r}")
            if not Path(self.segmenter).exists():
                raise UsdenoiseError(f"{where}: segmenter {self.segmenter}: not found (give a "
                                     "segmenter run folder or its .safetensors)")
        _check_self_supervised(self, where=where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a TOML file into a `TrainConfig`; `overrides` (e.g. from the CLI) win.

    Unknown keys and values of the wrong type are one-line errors naming the file and key.
    """
    return config_from_dict({**read_toml(path), **overrides}, where=str(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable or malformed file is a one-line error."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UsdenoiseError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsdenoiseError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot read ({exc.strerror})") from None


def config_from_dict(raw: dict[str, Any], *, where: str = "config") -> TrainConfig:
    """Build a `TrainConfig` from plain data (TOML, JSON), checking keys and types."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in raw:
        if key not in known:
            raise UsdenoiseError(
                f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})"
            )
    hints = typing.get_type_hints(TrainConfig)
    for key, value in raw.items():
        _check_value(key, value, hints[key], where=where)
    values = dict(raw)
    if "model" in values:
        values["model"] = dict(values["model"])
    for key, value in values.items():
        if hints[key] in (float, float | None) and isinstance(value, int):
            values[key] = float(value)
    config = TrainConfig.__new__(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in values:
            setattr(config, f.name, values[f.name])
        elif f.default_factory is not dataclasses.MISSING:
            setattr(config, f.name, f.default_factory())
        else:
            setattr(config, f.name, f.default)
    config.validate(where=where)
    return config


def config_differences(old: dict[str, Any], new: TrainConfig) -> list[str]:
    """`["lr 0.001 -> 0.01", ...]` for settings that must match on `--resume`."""
    new_dict = new.to_dict()
    defaults = TrainConfig.__new__(TrainConfig)  # keys a run from an older version lacks
    for f in dataclasses.fields(TrainConfig):
        setattr(defaults, f.name, f.default_factory() if f.default_factory
                is not dataclasses.MISSING else f.default)
    out = []
    for key in sorted(set(old) | set(new_dict)):
        if key in RESUMABLE_CHANGES:
            continue
        before = old.get(key, getattr(defaults, key, None))
        if before != new_dict.get(key):
            out.append(f"{key} {before!r} -> {new_dict.get(key)!r}")
    return out


def _check_self_supervised(config: TrainConfig, *, where: str) -> None:
    """`self_supervised` selects task "selfsupervised"; it trains with mean squared error and,
    on images that are already noisy, adds no speckle: the default loss and noise become
    `l2` and `none` (an explicit `noise` spec speckles clean images once, for checks)."""
    method = config.self_supervised
    if method is None:
        if config.task == "selfsupervised":
            raise UsdenoiseError(f"{where}: task 'selfsupervised' needs a self_supervised "
                                 f"method ({', '.join(SELF_SUPERVISED)})")
        return
    if method not in SELF_SUPERVISED:
        raise UsdenoiseError(f"{where}: --self-supervised {method!r} is not a method (known: "
                             f"{', '.join(SELF_SUPERVISED)})")
    if config.task == "denoise":
        config.task = "selfsupervised"
    elif config.task != "selfsupervised":
        raise UsdenoiseError(f"{where}: self_supervised is a setting of denoiser training, "
                             f"not of task {config.task!r}")
    if config.loss == TrainConfig.loss:
        config.loss = "l2"
    elif config.loss != "l2":
        raise UsdenoiseError(f"{where}: --self-supervised {method} trains with its own mean "
                             f"squared error; give --loss l2 or leave it out, not "
                             f"{config.loss!r}")
    if config.noise == TrainConfig.noise:
        config.noise = "none"
    if config.segmenter is not None:
        raise UsdenoiseError(f"{where}: --segmenter (task losses) needs clean targets; it "
                             "cannot be combined with --self-supervised")
    for key in ("ss_level", "ss_axial", "ss_lateral"):
        value = getattr(config, key)
        if value is not None and not value >= 0:
            raise UsdenoiseError(f"{where}: {key} must be >= 0, got {value}")
    if not config.ss_alpha > 0:
        raise UsdenoiseError(f"{where}: ss_alpha must be positive, got {config.ss_alpha}")
    if config.ss_stride < 1:
        raise UsdenoiseError(f"{where}: ss_stride must be at least 1, got {config.ss_stride}")
    if config.ss_gamma < 0:
        raise UsdenoiseError(f"{where}: ss_gamma must be >= 0, got {config.ss_gamma}")
    if method == "nb2nb" and config.crop < 16 * config.ss_stride:
        raise UsdenoiseError(f"{where}: --self-supervised nb2nb with ss_stride "
                             f"{config.ss_stride} needs --crop of at least "
                             f"{16 * config.ss_stride} (sub-images of crop/(2·stride) >= 8 px),"
                             f" got {config.crop}")


def _check_types(config: TrainConfig, *, where: str) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(config):
        _check_value(f.name, getattr(config, f.name), hints[f.name], where=where)


def _check_value(key: str, value: Any, hint: Any, *, where: str) -> None:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    allowed = typing.get_args(hint) if union else (hint,)
    for kind in allowed:
        if _matches(value, kind):
            return
    names = " or ".join(_type_name(kind) for kind in allowed)
    raise UsdenoiseError(
        f"{where}: key {key!r} must be {names}, got {type(value).__name__} {value!r}"
    )


def _matches(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "absent"
    if typing.get_origin(kind) is dict:
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, str(kind)
    )



def parse_model_params(items: list[str] | None, *, option: str = "--arch-param"
                       ) -> dict[str, Any]:
    """`["channels=8,16,16,32", "dropout=0"]` -> {"channels": [8, 16, 16, 32], "dropout": 0}.

    Values are read as JSON where they can be (numbers, true/false, lists; a comma list
    becomes a list) and kept as strings otherwise.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsdenoiseError(f"{option} {item!r}: expected key=value")
        text = text.strip()
        candidate = f"[{text}]" if "," in text and not text.startswith("[") else text
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            value = text
        out[key.strip()] = value
    return out


SEGMENT_DEFAULTS: dict[str, Any] = {"task": "segment", "arch": "unet", "loss": "dice+ce",
                                    "noise": "none", "image_size": 128}


def segment_train_config(given: dict[str, Any], *, config: str | Path | None = None,
                         resume: str | Path | None = None):
    """TrainConfig for `segment train`: segment defaults < TOML file < options given.

    The crop defaults to the whole image (`image_size`); on `--resume` the run's settings
    are the base.
    """
    if resume is not None:
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
