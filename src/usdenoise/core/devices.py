"""The one place that decides what the device name "auto" means."""

from __future__ import annotations

import torch


def resolve_auto(name: str) -> str:
    """`auto` -> "cuda" when a CUDA GPU is visible, else "cpu"; other names unchanged."""
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
