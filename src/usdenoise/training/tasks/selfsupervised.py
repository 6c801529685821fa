"""The "selfsupervised" training task: a denoiser learnt from noisy scans alone.

The images of the data set are the noisy scans (`folder:my_scans`, noise `none`); with a
noise spec (`phantom --noise physics:0.1`) each clean image is speckled ONCE, seeded by its
index, and the clean image is kept only to report validation PSNR/SSIM. Both methods suit
the displayed B-mode, where log compression has made speckle roughly additive, spatially
correlated over the PSF and of one level:

* `r2r`, Recorrupted-to-Recorrupted (Pang, Zheng, Quan, Ji, "Recorrupted-to-Recorrupted:
  Unsupervised Deep Learning for Image Denoising", CVPR 2021): input `y + α·n`, target
  `y − n/α`, with `n` Gaussian noise of the speckle's covariance. For Gaussian speckle of
  covariance Σ the two corruptions are independent, so the mean squared error to the target
  equals, up to a constant, the supervised error of denoising `y + α·n` (noise covariance
  (1+α²)Σ). `n` has exactly the covariance of log-compressed fully developed speckle from a
  Gaussian PSF of widths `ss_axial` x `ss_lateral` px, std `ss_level`
  (`noise.level.correlated_noise`, "speckle"). Unset statistics are measured on up to
  `ESTIMATE_IMAGES` training images by `noise.estimate.estimate_speckle` (what `usdenoise
  inspect` reports: homogeneous tiles, grain FWHM axial and lateral, level, and the
  `physics` PSF widths fitted to the FWHMs), the median over the images with tiles.
* `nb2nb`, Neighbor2Neighbor (Huang, Li, Jia, Lu, Liu, "Neighbor2Neighbor: Self-Supervised
  Denoising from Single Noisy Images", CVPR 2021) on cells of `ss_stride` pixels: the image
  is read as the `stride²` sub-lattices `y[r::s, c::s]` (on which speckle of grain below `s`
  is nearly white), and each 2x2 block of cells gives two neighbouring cells, one to each of
  the sub-images g1, g2. Loss `‖f(g1) − g2‖² + γ‖f(g1) − g2 − (g1(f(y)) − g2(f(y)))‖²`,
  with `f(y)` computed without gradient (the regulariser of the paper, constant γ).

`batch` returns the noisy crop as input and a dict as target (the draws: `noise` for r2r,
`choice` for nb2nb; `clean` when known); the loop calls this task's `loss_fn(forward, x,
target)` instead of `loss(net(x), target)`. Validation: `validation_loss_fn` with draws
fixed per image (r2r: the loss; nb2nb: its reconstruction term, see there), plus PSNR/SSIM of
`f(y)` against the clean image when there is one.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.data import load_dataset
from usdenoise.data.splits import split_by_subject
from usdenoise.metrics import psnr, ssim
from usdenoise.models import build_network
from usdenoise.models.space_to_depth import lattice_apply, split_lattices
from usdenoise.noise import make_noise
from usdenoise.noise.estimate import DatasetSpeckleEstimate, aggregate, estimate_speckle
from usdenoise.noise.level import correlated_noise, recorrupt
from usdenoise.training.config import TrainConfig
from usdenoise.training.distributed import World

#: fewest images a folder needs: splits 70/15/15 give at least 2 train, 1 val, 1 test
MIN_IMAGES = 4
#: images the speckle statistics are estimated from (median over them)
ESTIMATE_IMAGES = 16
#: extra seed part of the fixed per-image draws (validation recorruption, simulated speckle)
_VAL_DRAW, _SIMULATED = 1, 2


# ---------------------------------------------------------------------------------------------
# speckle statistics


@dataclass(frozen=True)
class SpeckleStats:
    """Level (display std) and PSF widths (pixels) of the speckle R2R recorrupts with."""

    sigma: float
    axial_sigma: float
    lateral_sigma: float


def estimate_patch(shape: tuple[int, ...]) -> int:
    """Tile side of the speckle estimate: 32 px (`usdenoise inspect`'s) on images of 256 px
    and more, else 16 px; small images have too few homogeneous 32 px tiles, and those
    they have straddle edges, which widens the measured grain."""
    return 32 if min(shape[-2:]) >= 256 else 16


def measure_speckle(images: list[torch.Tensor]) -> tuple[SpeckleStats | None,
                                                         DatasetSpeckleEstimate]:
    """`noise.estimate.estimate_speckle` on each image (homogeneous tiles, grain FWHM, level,
    fitted `physics` PSF widths), medians over the images with tiles. The stats are None
    when no image had a homogeneous tile."""
    found = aggregate(estimate_speckle(x, patch=estimate_patch(tuple(x.shape))) for x in images)
    if found.sigma is None or found.axial_sigma is None or found.lateral_sigma is None:
        return None, found
    return SpeckleStats(found.sigma, found.axial_sigma, found.lateral_sigma), found


def speckle_noise(shape: tuple[int, ...], stats: SpeckleStats, *,
                  generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise [..., H, W] of std `stats.sigma` with the correlation of log-compressed
    speckle of the measured grain (`noise.level.correlated_noise`, "speckle")."""
    return correlated_noise(shape, axial=stats.axial_sigma, lateral=stats.lateral_sigma,
                            correlation="speckle", generator=generator) * stats.sigma


# ---------------------------------------------------------------------------------------------
# Neighbor2Neighbor sub-sampler

#: the 8 ordered pairs of edge-neighbouring cells of a 2x2 block (NB2NB's sampler), as
#: (row, column) offsets of the cell for g1 and the one for g2
NEIGHBOUR_PAIRS = (((0, 0), (0, 1)), ((0, 0), (1, 0)), ((0, 1), (0, 0)), ((0, 1), (1, 1)),
                   ((1, 0), (0, 0)), ((1, 0), (1, 1)), ((1, 1), (0, 1)), ((1, 1), (1, 0)))


def cell_lattices(x: torch.Tensor, stride: int) -> torch.Tensor:
    """[B, C, H, W] -> [B·s², C, H/s, W/s]: the sub-lattices x[r::s, c::s] (H, W cropped)."""
    h, w = (x.shape[-2] // (2 * stride)) * 2 * stride, (x.shape[-1] // (2 * stride)) * 2 * stride
    return split_lattices(x[..., :h, :w], stride)


def neighbour_subsample(x: torch.Tensor, choice: torch.Tensor, stride: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(g1, g2) [B·s², C, H/2s, W/2s]: per 2x2 block of s x s cells, the pixel at the same
    in-cell offset of two edge-neighbouring cells; `choice` [B·s², H/2s, W/2s] in 0..7
    indexes NEIGHBOUR_PAIRS per block. The two pixels lie exactly `stride` apart."""
    lattice = cell_lattices(x, stride)  # [N, C, h, w]
    n, c, h, w = lattice.shape
    blocks = lattice.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(n, c, h // 2, w // 2, 4)  # cell index 2·row + column
    pairs = torch.tensor([[2 * a[0] + a[1], 2 * b[0] + b[1]] for a, b in NEIGHBOUR_PAIRS],
                         device=x.device)
    picked = pairs[choice.to(x.device).long()]  # [N, h/2, w/2, 2]
    index = picked[:, None].expand(n, c, h // 2, w // 2, 2)
    return blocks.gather(-1, index[..., :1])[..., 0], blocks.gather(-1, index[..., 1:])[..., 0]


def choice_shape(shape: tuple[int, ...], stride: int) -> tuple[int, int, int]:
    """Shape of the NB2NB `choice` for a batch shape [B, C, H, W]."""
    b, _, h, w = shape
    return b * stride * stride, h // (2 * stride), w // (2 * stride)


# ---------------------------------------------------------------------------------------------
# the task


def images_needed(batch_size: int) -> int:
    """Fewest images (one subject each) whose 70/15/15 split has a train part of at least
    `batch_size` images and non-empty validation and test parts; at least `MIN_IMAGES`."""
    n = MIN_IMAGES
    while True:
        parts = split_by_subject(range(n))
        if len(parts["train"]) >= batch_size and parts["val"] and parts["test"]:
            return n
        n += 1


class SimulatedScans(torch.utils.data.Dataset):
    """Clean images speckled once (seeded by index): `image` noisy, `clean` kept for PSNR."""

    def __init__(self, base: Any, noise: nn.Module, seed: int) -> None:
        self.base, self.noise, self.seed = base, noise, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.base[index])
        clean = sample["image"].float()
        g = torch.Generator().manual_seed(
            derive_seed(self.seed, SeedPurpose.VALIDATION_NOISE, index, _SIMULATED))
        sample["image"] = self.noise(clean[None], generator=g)[0]
        sample["clean"] = clean
        return sample


class SelfSupervisedTask:
    """A denoiser (kind "denoiser", any architecture) trained by r2r or nb2nb on noisy images."""

    name = "selfsupervised"
    checkpoint_kind = "denoiser"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.method = config.self_supervised
        self.simulated = config.noise != "none"
        self.noise = make_noise(config.noise) if self.simulated else None
        self.keys = ("image", "clean") if self.simulated else ("image",)
        self.figures = ("psnr", "ssim") if self.simulated else ()
        self.stats: SpeckleStats | None = None
        self.estimate: DatasetSpeckleEstimate | None = None
        count = len(load_dataset(config.data, size=config.image_size))
        need = images_needed(config.batch_size)
        if count < need:
            raise UsdenoiseError(f"{config.data}: {count} image{'s' * (count != 1)}; "
                                 f"--self-supervised needs at least {need} (train, validation "
                                 f"and test splits, the train split at least --batch-size "
                                 f"{config.batch_size})")

    def build_model(self) -> nn.Module:
        net = build_network(self.config.arch, self.config.preset, **self.config.model)
        if self.method == "nb2nb":
            self._check_sub_images(net)
        return net

    def _check_sub_images(self, net: nn.Module) -> None:
        """nb2nb trains on sub-images of crop / (2·stride) px: a network that sees a much
        wider window than that learns mostly from the padding (the phantom check's DiConvAE
        on 12-px sub-images fell below its input; docs/training.md)."""
        c = self.config
        side = c.crop // (2 * c.ss_stride)
        seen = getattr(net, "receptive_field", None)
        if isinstance(seen, int) and seen > 2 * side:
            warnings.warn(
                f"nb2nb: --crop {c.crop} at ss_stride {c.ss_stride} trains on {side}-px "
                f"sub-images, but the {c.arch} network sees {seen} px and will learn mostly "
                f"from padding; use --crop {seen * c.ss_stride} or more, or a network that "
                "sees less (--arch dncnn)", stacklevel=2)

    def build_loss(self) -> nn.Module:
        return nn.MSELoss()

    def prepare_dataset(self, dataset: Any, indices: list[int]) -> Any:
        """Speckle clean images once (with a noise spec); estimate unset r2r statistics."""
        if self.simulated:
            assert self.noise is not None  # made in __init__ with a noise spec
            dataset = SimulatedScans(dataset, self.noise, self.config.seed)
        if self.method == "r2r":
            self.stats = self._statistics(dataset, indices)
        return dataset

    def _statistics(self, dataset: Any, indices: list[int]) -> SpeckleStats:
        c = self.config
        given = (c.ss_level, c.ss_axial, c.ss_lateral)
        if c.ss_level is not None and c.ss_axial is not None and c.ss_lateral is not None:
            return SpeckleStats(c.ss_level, c.ss_axial, c.ss_lateral)
        images = [dataset[i]["image"] for i in indices[:ESTIMATE_IMAGES]]
        measured, self.estimate = measure_speckle(images)
        if measured is None:
            why = next((e.reason for e in self.estimate.estimates if e.reason), "")
            raise UsdenoiseError(
                f"{c.data}: r2r found no homogeneous speckle to measure in {len(images)} "
                f"training image{'s' * (len(images) != 1)} ({why}); give ss_level, ss_axial "
                "and ss_lateral in a --config file, or use --self-supervised nb2nb")
        return SpeckleStats(*(g if g is not None else m for g, m in
                              zip(given, asdict(measured).values(), strict=True)))

    def loss_inputs(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict:
        return {}

    def checkpoint_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"method": self.method}
        if self.stats is not None:
            meta["speckle"] = asdict(self.stats)
        if self.estimate is not None:  # what was measured (noise.estimate)
            meta["speckle_estimate"] = self.estimate.to_dict(per_image=False)
        out: dict[str, Any] = {"self_supervised": meta}
        if self.method == "nb2nb":  # read by denoise.network: run it as it was trained
            out["inference"] = {"lattice": self.config.ss_stride}
        return out

    # -- draws -----------------------------------------------------------------------------

    def _draw(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """The method's random draw for a batch of `shape` [B, C, H, W]."""
        if self.method == "r2r":
            assert self.stats is not None  # prepare_dataset sets it for r2r
            return speckle_noise(shape, self.stats, generator=generator)
        return torch.randint(0, len(NEIGHBOUR_PAIRS), choice_shape(shape, self.config.ss_stride),
                             generator=generator, device=generator.device)

    def batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator, world: World
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The noisy crop and the draws; under DDP drawn for the global batch (rows kept)."""
        y = batch["image"].to(generator.device, non_blocking=True)
        b = y.shape[0]
        draw = self._draw((b * world.size, *y.shape[1:]), generator)
        if self.method == "r2r":
            draw = draw[world.rank :: world.size]
        else:  # s² choice rows per image
            per = self.config.ss_stride ** 2
            rows = draw.reshape(b * world.size, per, *draw.shape[1:])[world.rank :: world.size]
            draw = rows.reshape(b * per, *draw.shape[1:])
        return y, self._target(batch, y, draw)

    def validation_batch(self, batch: dict[str, torch.Tensor], device: torch.device
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The noisy crop and draws fixed per image (seeded by its index)."""
        y = batch["image"].to(device, non_blocking=True)
        draws = []
        for row, index in enumerate(batch["index"].tolist()):
            g = torch.Generator(device=device).manual_seed(
                derive_seed(self.config.seed, SeedPurpose.VALIDATION_NOISE, index, _VAL_DRAW))
            draws.append(self._draw(tuple(y[row : row + 1].shape), g))
        return y, self._target(batch, y, torch.cat(draws))

    def _target(self, batch: dict[str, torch.Tensor], y: torch.Tensor, draw: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        target = {"noisy": y, ("noise" if self.method == "r2r" else "choice"): draw}
        if self.simulated:
            target["clean"] = batch["clean"].to(y.device, non_blocking=True)
        return target

    # -- loss and figures --------------------------------------------------------------------

    def loss_fn(self, forward: Any, x: torch.Tensor, target: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        """The self-supervised loss of the network `forward` on noisy `x` (see module doc)."""
        if self.method == "r2r":
            inp, tgt = recorrupt(x, target["noise"].to(x.dtype), self.config.ss_alpha)
            return F.mse_loss(forward(inp).float(), tgt)
        stride = self.config.ss_stride
        g1, g2 = neighbour_subsample(x, target["choice"], stride)
        out = forward(g1).float()
        with torch.no_grad():
            full = self.predict(forward, x)
        f1, f2 = neighbour_subsample(full, target["choice"], stride)
        diff = out - g2
        return F.mse_loss(out, g2) + self.config.ss_gamma * (diff - (f1 - f2)).square().mean()

    def validation_loss_fn(self, forward: Any, x: torch.Tensor,
                           target: dict[str, torch.Tensor]) -> torch.Tensor:
        """What picks the best epoch. r2r: its loss. nb2nb: the reconstruction term
        ‖f(g1) − g2‖² alone. With g2's noise independent of g1 its expectation is the error of
        f(g1) against g2's noise-free value plus a constant, so it falls as the network
        denoises. The regulariser does not: for a perfect denoiser it is γσ², for the
        identity 0, so the whole loss ranks a near-identity network first (measured: best
        epoch 4 of 30, 21.95 dB against B(x); the last epoch 24.32 dB)."""
        if self.method == "r2r":
            return self.loss_fn(forward, x, target)
        g1, g2 = neighbour_subsample(x, target["choice"], self.config.ss_stride)
        return F.mse_loss(forward(g1).float(), g2)

    def predict(self, forward: Any, x: torch.Tensor) -> torch.Tensor:
        """The denoised image as inference makes it: nb2nb's network learnt on sub-lattices
        (pixels `ss_stride` apart), so it runs on the sub-lattices (`lattice_apply`)."""
        stride = self.config.ss_stride if self.method == "nb2nb" else 1
        return lattice_apply(forward, x, stride).float()

    def measure(self, output: torch.Tensor, target: dict[str, torch.Tensor]
                ) -> dict[str, torch.Tensor]:
        """PSNR/SSIM of the denoised `f(y)` against the clean image, when there is one."""
        if not self.simulated:
            return {}
        output = output.float().clamp(0, 1)
        return {"psnr": psnr(output, target["clean"]), "ssim": ssim(output, target["clean"])}
