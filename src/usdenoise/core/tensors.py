"""The one check of the `[B, C, H, W]` image batches every stage passes around."""

from __future__ import annotations

import torch

from usdenoise.core.errors import UsdenoiseError


def check_batch(x: object, what: str, *, channels: int | None = None, floating: bool = True,
                nonempty: bool = False, expected: str | None = None) -> torch.Tensor:
    """`x` must be a 4-D tensor (`channels` of them, when given), float where `floating`,
    with elements where `nonempty`; otherwise a UsdenoiseError that starts with `what`.
    `expected` names the layout in the message where the caller checks channels itself."""
    if not isinstance(x, torch.Tensor):
        raise UsdenoiseError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    layout = expected or f"a [B, {channels if channels is not None else 'C'}, H, W] tensor"
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise UsdenoiseError(f"{what}: expected {layout}, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise UsdenoiseError(f"{what}: expected a float tensor in [0, 1], got dtype {x.dtype}")
    if nonempty and x.numel() == 0:
        raise UsdenoiseError(f"{what}: empty tensor of shape {tuple(x.shape)}")
    return x
