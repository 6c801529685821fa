"""Denoising networks (and, later, segmentation networks).

`ARCHITECTURES` maps a name to an `nn.Module` class with `PRESETS` (name -> constructor
keywords) and a `config` dict on every instance, so a checkpoint can rebuild it with
`build_network(arch, **config)`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.diconvae import DiConvAE
from usdenoise.models.dncnn import DnCNN
from usdenoise.models.unet import UNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "diconvae": DiConvAE,
    "dncnn": DnCNN,
    "unet": UNet,
}


def build_network(arch: str, preset: str | None = None, **overrides: Any) -> nn.Module:
    """Build `arch` from a preset (default: the class's `DEFAULT_PRESET`, i.e. "fast"),
    with keyword overrides (`build_network("diconvae", "fast", dropout=0.0)`)."""
    return build_from_registry(ARCHITECTURES, arch, preset, overrides, what="architecture")


def build_from_registry(registry: dict[str, type[nn.Module]], arch: str, preset: str | None,
                        overrides: dict[str, Any], *, what: str) -> nn.Module:
    """Look `arch` up, start from its preset, apply checked overrides; every problem is a
    one-line error (shared by the denoising and the segmentation networks)."""
    key = str(arch).strip().lower()
    if key not in registry:
        raise UsdenoiseError(f"unknown {what} {arch!r} (known: {', '.join(sorted(registry))})")
    cls = registry[key]
    presets: dict[str, dict[str, Any]] = getattr(cls, "PRESETS", {})
    name = preset if preset is not None else getattr(cls, "DEFAULT_PRESET", None)
    if name is not None and name not in presets:
        raise UsdenoiseError(
            f"{key}: unknown preset {name!r} (presets: {', '.join(presets) or 'none'})"
        )
    kwargs = dict(presets.get(name, {})) if name is not None else {}
    allowed = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")
    ]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise UsdenoiseError(
            f"{key}: unknown option {unknown[0]!r} (options: {', '.join(allowed)})"
        )
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except UsdenoiseError:
        raise
    except (TypeError, ValueError) as exc:
        raise UsdenoiseError(f"{key}: bad configuration {kwargs}: {exc}") from None


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
