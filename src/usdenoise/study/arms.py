"""The arms of `usdenoise study`: which denoiser each is and, for trained ones, how.

An arm is either a registered denoiser used as it is (`none`, `bm3d`, `median`, the shipped
`default`) or a DiConvAE the study trains with a given loss. The perceptual arms need local
VGG16 weights; without them the task-perceptual arm (frozen segmenter features, no ImageNet
weights) stands in, and the report says so. The task-aware arm is the study's fix: image loss
plus the frozen segmenter's Dice + cross-entropy on the denoised image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from usdenoise.core.errors import UsdenoiseError


@dataclass(frozen=True)
class Arm:
    """One denoising arm. `loss` set: a DiConvAE trained by the study with that loss."""

    name: str
    summary: str
    method: str | None = None  # registered denoiser; None with no loss: no denoising
    params: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None
    needs: tuple[str, ...] = ()  # "vgg_weights", "segmenter", "bm3d"

    @property
    def trained(self) -> bool:
        return self.loss is not None


ARMS: dict[str, Arm] = {arm.name: arm for arm in (
    Arm("none", "no denoising (the baseline of every paired test)"),
    Arm("bm3d", "BM3D, noise level estimated per image", method="bm3d", needs=("bm3d",)),
    Arm("median", "median filter, 5x5 (cheap classic)", method="median"),
    Arm("diconvae-l1msssim", "DiConvAE trained with L1 + MS-SSIM (the seed study's loss)",
        loss="l1+msssim"),
    Arm("diconvae-l2perceptual", "DiConvAE trained with L2 + VGG16 perceptual",
        loss="l2+0.1*perceptual", needs=("vgg_weights",)),
    Arm("diconvae-l1perceptual", "DiConvAE trained with L1 + VGG16 perceptual",
        loss="l1+0.1*perceptual", needs=("vgg_weights",)),
    Arm("diconvae-taskperceptual", "DiConvAE trained with L1 + task-perceptual (features of "
        "the frozen segmenter's encoder; stands in for VGG16 perceptual)",
        loss="l1+taskperceptual", needs=("segmenter",)),
    Arm("default", "the shipped default model", method="default"),
    Arm("diconvae-task", "DiConvAE trained task-aware: L1 + MS-SSIM + 0.1 x segmentation loss "
        "of the frozen segmenter", loss="l1+msssim+0.1*task", needs=("segmenter",)),
)}


def default_arms(*, vgg_weights: str | None) -> list[str]:
    """Every arm the issue names; the VGG pair only with weights, else the stand-in."""
    perceptual = (["diconvae-l2perceptual", "diconvae-l1perceptual"] if vgg_weights
                  else ["diconvae-taskperceptual"])
    return ["none", "bm3d", "median", "diconvae-l1msssim", *perceptual, "default",
            "diconvae-task"]


def bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def select_arms(names: list[str] | None, *, vgg_weights: str | None
                ) -> tuple[list[Arm], list[str]]:
    """Arms to run and notes for the report. Unknown names and a VGG arm without weights are
    errors; bm3d without the package is dropped with a note (it is an optional extra)."""
    notes: list[str] = []
    chosen = names if names else default_arms(vgg_weights=vgg_weights)
    if not names and not vgg_weights:
        notes.append("no --vgg-weights given: the L2/L1 + perceptual arms were not trained; "
                     "diconvae-taskperceptual (frozen segmenter features) stands in for them")
    arms: list[Arm] = []
    for name in chosen:
        key = name.strip().lower()
        if key not in ARMS:
            raise UsdenoiseError(f"--arms: unknown arm {name!r} (known: {', '.join(ARMS)})")
        arm = ARMS[key]
        if "vgg_weights" in arm.needs and not vgg_weights:
            raise UsdenoiseError(f"--arms: {key} needs local VGG16 weights (--vgg-weights PATH)")
        if "bm3d" in arm.needs and not bm3d_available():
            notes.append(f"{key} left out: the bm3d package is not installed "
                         "(pip install 'usdenoise[bm3d]')")
            continue
        if key not in [a.name for a in arms]:
            arms.append(arm)
    if "none" not in [a.name for a in arms]:
        arms.insert(0, ARMS["none"])  # every paired test needs the baseline
    return arms, notes
