"""Several data sets used as one (`hc18:PATH+phantom:200`), e.g. to train a blind denoiser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError


class CombinedDataset(torch.utils.data.Dataset):
    """Concatenation whose subjects are prefixed by their data set, so splits never mix them."""

    name = "combined"
    summary = "several data sets joined with '+': hc18:PATH+phantom:200"

    def __init__(self, parts: Sequence[Any], spec: str) -> None:
        if len(parts) < 2:
            raise UsdenoiseError(f"data set {spec!r}: '+' joins at least two data sets")
        names = {tuple(p.class_names) for p in parts}
        if len(names) != 1:
            raise UsdenoiseError(
                f"data set {spec!r}: the parts have different classes {sorted(names)}"
            )
        self.parts = list(parts)
        self.spec = spec
        self.class_names = tuple(parts[0].class_names)
        self._index = [(p, i) for p, part in enumerate(self.parts) for i in range(len(part))]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def ids(self) -> list[str]:
        return [f"{p.name}_{i}" for p in self.parts for i in p.ids]

    @property
    def subjects(self) -> list[str]:
        return [f"{p.name}/{s}" for p in self.parts for s in p.subjects]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        part, inner = self._index[index]
        sample = dict(self.parts[part][inner])
        name = self.parts[part].name
        sample["id"] = f"{name}_{sample['id']}"
        sample["subject"] = f"{name}/{sample['subject']}"
        return sample
