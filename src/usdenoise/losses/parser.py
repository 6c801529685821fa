"""The registry of losses and the parser for combinations like "0.16*l1+0.84*msssim"."""

from __future__ import annotations

import math
import os
import re
from typing import Any, cast

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.losses.image import L1Loss, L2Loss, Loss, MSSSIMLoss, PerceptualLoss, SSIMLoss
from usdenoise.losses.task import TaskLoss, TaskPerceptualLoss

LOSSES: dict[str, type[Loss]] = {
    "l1": L1Loss,
    "l2": L2Loss,
    "ssim": SSIMLoss,
    "msssim": MSSSIMLoss,
    "perceptual": PerceptualLoss,
    "task": TaskLoss,
    "taskperceptual": TaskPerceptualLoss,
}


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; `last_terms` keeps the latest value of each (for logs)."""

    def __init__(self, terms: list[tuple[float, str, Loss]]) -> None:
        super().__init__()
        self.weights = [w for w, _, _ in terms]
        self.names = [n for _, n, _ in terms]
        self.terms = nn.ModuleList(m for _, _, m in terms)
        self.spec = "+".join(f"{_fmt(w)}*{n}" if w != 1 else n for w, n, _ in terms)
        self.last_terms: dict[str, float] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **batch: Any) -> torch.Tensor:
        total = pred.new_zeros(())
        for w, name, term in zip(self.weights, self.names, self.terms, strict=True):
            extra = {}
            # nn.ModuleList yields nn.Module to the type checker; its items are Losses
            for key in cast(Loss, term).extra_inputs:
                if key not in batch:
                    raise UsdenoiseError(f"loss {name}: needs {key!r} in the batch")
                extra[key] = batch[key]
            value = term(pred, target, **extra)
            self.last_terms[name] = float(value.detach())
            total = total + w * value
        return total

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


def _fmt(w: float) -> str:
    return f"{w:g}"


_TERM = re.compile(r"^(?:(?P<w>[^*]*)\*)?(?P<name>[^*]*)$")


def parse_loss(
    spec: str, *, vgg_weights: str | os.PathLike[str] | None = None, **resources: Any
) -> CombinedLoss:
    """`"0.16*l1+0.84*msssim"` -> a module computing the weighted sum of the named losses.

    Terms are `NAME` (weight 1) or `WEIGHT*NAME`, joined by `+`; spaces are ignored; each
    name at most once; weights positive and finite. Resources a term `requires`
    (`vgg_weights`, `segmenter`) are passed to its constructor.
    """
    text = str(spec).replace(" ", "")
    where = f"loss {spec!r}"
    if not text:
        raise UsdenoiseError(f"{where}: empty loss specification (e.g. l1+msssim)")
    resources = {"vgg_weights": vgg_weights, **resources}
    terms: list[tuple[float, str, Loss]] = []
    seen: set[str] = set()
    for i, part in enumerate(text.split("+")):
        if not part:
            pos = "at the start" if i == 0 else "after '+'"
            raise UsdenoiseError(f"{where}: missing term {pos}")
        m = _TERM.match(part)
        if m is None:
            raise UsdenoiseError(f"{where}: cannot parse term {part!r} (use WEIGHT*NAME)")
        wtext, name = m.group("w"), m.group("name").lower()
        if wtext is not None and not wtext:
            raise UsdenoiseError(f"{where}: missing weight before '*' in {part!r}")
        if not name:
            raise UsdenoiseError(f"{where}: missing loss name after '*' in {part!r}")
        weight = 1.0
        if wtext is not None:
            try:
                weight = float(wtext)
            except ValueError:
                raise UsdenoiseError(f"{where}: weight {wtext!r} is not a number") from None
            if not math.isfinite(weight) or weight <= 0:
                raise UsdenoiseError(f"{where}: weight {wtext!r} must be positive and finite")
        if name not in LOSSES:
            raise UsdenoiseError(
                f"{where}: unknown loss {name!r} (known: {', '.join(LOSSES)})"
            )
        if name in seen:
            raise UsdenoiseError(f"{where}: {name} appears twice")
        seen.add(name)
        cls = LOSSES[name]
        kwargs = {key: resources.get(key) for key in cls.requires}
        terms.append((weight, name, cls(**kwargs)))
    return CombinedLoss(terms)
