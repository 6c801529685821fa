"""Trained networks behind the common `Denoiser` interface.

`network` loads any denoiser checkpoint (`checkpoint=PATH`, see `usdenoise.checkpoint`);
`default` loads the model shipped inside the package (`usdenoise/weights/default.*`).
Both denoise in overlapping tiles (`tile`, `overlap`) so memory stays bounded, and
`strength` blends the output with the input (1 = network output, 0 = input unchanged), as
for every denoiser (`usdenoise.denoise.base.STRENGTH`).
`smooth` varies a level-conditioned network's level map over the image
(`usdenoise.noise.adaptive_level`); `passes` (any network) applies the network again where
the tissue is flat, for more speckle removal there than the level map alone gives.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from usdenoise.checkpoint import load_model
from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import STRENGTH, Param
from usdenoise.denoise.base import Denoiser
from usdenoise.models.inference import prepare_for_inference, to_channels_last
from usdenoise.models.space_to_depth import lattice_apply
from usdenoise.models.tiling import denoise_tiled
from usdenoise.noise.adaptive_level import adaptive_level_map, flatness
from usdenoise.noise.level import estimate_level, fitting_sigma, gaussian_blur

DEFAULT_WEIGHTS = "default.safetensors"
#: most network passes a `passes` setting may ask for (each costs one full inference)
MAX_PASSES = 8
#: Gaussian σ (px) of the flatness that blends later passes in: wider than FLATNESS_SIGMA so
#: the blend stays off the neighbourhood of an edge, where a second pass costs edge contrast
PASSES_FLATNESS_SIGMA = 5.0
PRECISIONS = ("float32", "bfloat16")

_COMMON = (
    Param("tile", None, "tile side in pixels for tiled inference (none: the whole image "
          "unless it exceeds the memory budget, see models.tiling)", int, low=16,
          allow_none=True),
    Param("overlap", 32, "overlap between tiles in pixels (smoothly blended)", int, low=0),
    Param("device", "auto", "where the network runs", str, choices=("auto", "cpu", "cuda")),
    Param("level", None, "speckle level to remove, for level-conditioned networks "
          "(None: measured on each image)", float, low=0.0, allow_none=True),
    Param("smooth", 0.0, "extra speckle removal in homogeneous tissue, sparing structures, "
          "for level-conditioned networks: the level map rises to (1 + smooth) x the level "
          "where the tissue is flat and falls to 1/(1 + smooth) x at edges (0: one level "
          "for the whole image; 3 suits native speckle, see docs/default_model.md)", float,
          low=0.0),
    Param("passes", 1, "times the network is applied in homogeneous tissue, each pass on the "
          "previous output with the first pass's level; structures keep the first pass "
          "(1: one pass everywhere; with smooth=3, 2-3 remove more speckle than the level "
          "map can, see docs/default_model.md)", int, low=1, high=MAX_PASSES),
    Param("keep_mean", 0.0, "restore the input's local mean brightness after denoising: the "
          "output plus the residual blurred by a Gaussian of this many px (0: off; 16 for "
          "native scans with smooth and passes, which darken flat tissue slightly, see "
          "docs/default_model.md)", float, low=0.0),
    Param("precision", "float32", "arithmetic of the network's convolutions: float32, or "
          "bfloat16 (autocast; about 2x faster on CPUs with AVX512-BF16 or AMX and on GPUs, "
          "output within ~0.001 of float32's on average, see docs/default_model.md)", str,
          choices=PRECISIONS),
    STRENGTH,  # listed with the networks' own parameters; the base class applies it
)


def restore_local_mean(y: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """`y + G_σ(x − y)`: the output `y` with the input `x`'s local mean, i.e. the residual's
    low frequencies given back. Speckle lives at the grain's scale and stays removed; a slow
    brightness shift (a denoiser that darkens flat tissue) does not. σ is capped so the
    reflect padding fits the image (`fitting_sigma`)."""
    sigma = fitting_sigma(sigma, x)
    return y + gaussian_blur(x - y, sigma, sigma)


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware: CUDA GPUs, and CPUs with AVX512-BF16
    or AMX (elsewhere oneDNN emulates it, slower than float32)."""
    if device.type != "cpu":
        return True
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def _pick_device(name: str, owner: str) -> torch.device:
    name = resolve_auto(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise UsdenoiseError(f"{owner}: device 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


class _NetworkBase(Denoiser):
    net: nn.Module
    sidecar: dict[str, Any]
    # set from `params` (_COMMON) by Denoiser.__init__
    tile: int | None
    overlap: int
    device: str
    level: float | None
    smooth: float
    passes: int
    keep_mean: float
    precision: str

    def check_config(self) -> None:
        if self.tile is not None and self.overlap >= self.tile:
            raise UsdenoiseError(
                f"{self.name}: overlap {self.overlap} must be smaller than tile {self.tile}"
            )
        self.torch_device = _pick_device(self.device, self.name)
        if self.precision == "bfloat16" and not native_bfloat16(self.torch_device):
            warnings.warn(f"{self.name}: this CPU has no bfloat16 instructions (AVX512-BF16 or "
                          "AMX); precision=bfloat16 is emulated and slower than float32",
                          stacklevel=3)

    def _load(self, path: str | Path) -> None:
        net, self.sidecar = load_model(path, kind="denoiser", map_location=self.torch_device)
        self.net = prepare_for_inference(net)
        if self.smooth and not cast(dict[str, Any], net.config).get("level_input"):
            raise UsdenoiseError(f"{self.name}: smooth={self.smooth:g} needs a level-"
                                 "conditioned network (model level_input = true); "
                                 f"{path} takes no level map")

    def _trained_range(self) -> tuple[float | None, float | None]:
        trained = (self.sidecar.get("meta", {}).get("level") or {}).get("range")
        return (float(trained[0]), float(trained[1])) if trained else (None, None)

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        """`[B]` speckle levels: `level` or measured on `x`, clamped to the range the network
        was trained on, with a warning."""
        if self.level is None:
            level = estimate_level(x)
        else:
            level = torch.full((x.shape[0],), float(self.level))
        low, high = self._trained_range()
        if low is not None and high is not None:
            outside = (level < low) | (level > high)
            if bool(outside.any()):
                warnings.warn(f"{self.name}: speckle level {float(level[outside][0]):.4g} is "
                              f"outside the trained range [{low:.4g}, {high:.4g}]; clamped",
                              stacklevel=4)
                level = level.clamp(low, high)
        return level

    def _level_input(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """`[x, level map]` for a level-conditioned network. With `smooth` the map varies
        (`noise.adaptive_level`) and is clamped to the trained range per pixel, silently:
        the user asked for more than the network knows only where the tissue is flat."""
        low, high = self._trained_range()
        return torch.cat([x, adaptive_level_map(level, x, self.smooth, low=low, high=high)],
                         dim=1)

    def _lattice(self) -> int:
        """Sub-lattice stride a network was trained at (self-supervised nb2nb), else 1."""
        inference = (self.sidecar.get("meta") or {}).get("inference") or {}
        value = inference.get("lattice", 1) if isinstance(inference, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 16:
            raise UsdenoiseError(f"{self.name}: checkpoint sidecar meta.inference.lattice "
                                 f"must be an integer 1-16, got {value!r}")
        return value

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        # every package model keeps its constructor arguments in .config
        conditioned = bool(cast(dict[str, Any], self.net.config).get("level_input"))
        level = self._level(x) if conditioned else None
        y = first = self._pass(x, level)
        if self.passes > 1:
            # later passes see a cleaner image than the first but keep its level, so each
            # removes more of what is left; they count only where the tissue is flat
            later = first
            for _ in range(self.passes - 1):
                later = self._pass(later.clamp(0.0, 1.0), level)
            weight = flatness(first, sigma=PASSES_FLATNESS_SIGMA)
            y = weight * later + (1.0 - weight) * first
        if self.keep_mean > 0:
            # clamped first: what the network puts below black must not lift the mean back
            y = restore_local_mean(y.clamp(0.0, 1.0), x, self.keep_mean)
        return y

    def _pass(self, x: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        """One application of the network to `x` (with its level map when `level` is set)."""
        if level is not None:
            x = self._level_input(x, level)
        lattice = self._lattice()
        half = self.precision == "bfloat16"
        try:
            with torch.autocast(self.torch_device.type, dtype=torch.bfloat16, enabled=half):
                y = lattice_apply(
                    lambda t: denoise_tiled(self.net, to_channels_last(t), tile=self.tile,
                                            overlap=self.overlap).contiguous(),
                    x, lattice)
        except torch.cuda.OutOfMemoryError:
            raise UsdenoiseError(
                f"{self.name}: out of GPU memory; use a smaller tile (tile={self.tile}) "
                "or device=cpu"
            ) from None
        return y.float()  # bfloat16 stops at the network: blends and level maps stay float32


class NetworkDenoiser(_NetworkBase):
    """A trained denoising network loaded from a checkpoint (safetensors + JSON sidecar)."""

    name = "network"
    summary = "a trained denoising network from a checkpoint (checkpoint=PATH)"
    params = (
        Param("checkpoint", None, "checkpoint: X.safetensors, X.json or a run folder", str,
              allow_none=True),
        *_COMMON,
    )
    checkpoint: str | None  # set from `params` by Denoiser.__init__

    def check_config(self) -> None:
        super().check_config()
        if self.checkpoint is None:
            raise UsdenoiseError(
                "network: parameter checkpoint is required (checkpoint=PATH to a .safetensors "
                "file, its .json sidecar or a run folder)"
            )
        self._load(self.checkpoint)


def default_weights_path() -> Path:
    """Where the shipped default model lives (may not exist in this build)."""
    return Path(str(resources.files("usdenoise") / "weights" / DEFAULT_WEIGHTS))


class DefaultDenoiser(_NetworkBase):
    """The pretrained blind denoiser shipped with the package."""

    name = "default"
    summary = "the pretrained blind denoising network shipped with usdenoise"
    params = _COMMON

    def check_config(self) -> None:
        super().check_config()
        path = default_weights_path()
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise UsdenoiseError(
                f"default: the default model is not shipped in this build ({path} is missing); "
                "train one with `usdenoise train phantom --arch diconvae --preset fast --out RUN` "
                "and use `--model RUN` (or method network with checkpoint=RUN)"
            )
        self._load(path)
