"""Which of a data set's classes a segmenter's classes stand for, matched by name.

A model trained on HC18 (background, head) evaluated on PSFHS (background, pubic_symphysis,
fetal_head) measures its `head` against PSFHS's `fetal_head`; `pubic_symphysis` has no
counterpart and counts as background in the true mask. Names match case-insensitively with
spaces, underscores and hyphens ignored; failing an exact match, two names that both contain
"head" match (`head` ~ `fetal head` ~ `fetal_head`). Class 0 is background on both sides.

`map_classes` returns a `ClassMapping`; its `truth` and `prediction` turn a data mask and a
predicted class map into the same compact classes (background + the evaluated classes), so
the usual per-class metrics apply unchanged. When the names already agree it is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError


def normalise(name: str) -> str:
    """'Fetal Head' -> 'fetalhead': the form names are compared in."""
    return "".join(c for c in str(name).lower() if c not in " _-")


def names_match(a: str, b: str) -> bool:
    """Same normalised name, or both name a head."""
    na, nb = normalise(a), normalise(b)
    return na == nb or ("head" in na and "head" in nb)


def _counterpart(name: str, candidates: dict[int, str]) -> int | None:
    """Index of the candidate that `name` stands for: an exact match before a head match."""
    for index, other in candidates.items():
        if normalise(other) == normalise(name):
            return index
    for index, other in candidates.items():
        if names_match(name, other):
            return index
    return None


@dataclass(frozen=True)
class ClassMapping:
    """Model classes `evaluated` (indices into `model_names`, background excluded) and, for
    every data class, the compact class it becomes (0: background)."""

    model_names: tuple[str, ...]
    data_names: tuple[str, ...]
    evaluated: tuple[int, ...]
    data_to_compact: tuple[int, ...]
    explicit: bool = False  # --classes given

    @property
    def names(self) -> tuple[str, ...]:
        """Class names of the compact maps: the model's background, then the evaluated."""
        return (self.model_names[0], *(self.model_names[i] for i in self.evaluated))

    @property
    def identity(self) -> bool:
        n = len(self.model_names)
        return (self.data_names == self.model_names and self.evaluated == tuple(range(1, n))
                and self.data_to_compact == tuple(range(n)))

    @property
    def mapped(self) -> dict[str, str]:
        """Data class -> model class, for the evaluated classes."""
        return {self.data_names[d]: self.names[c]
                for d, c in enumerate(self.data_to_compact) if d and c}

    @property
    def dropped(self) -> tuple[str, ...]:
        """Data classes counted as background."""
        return tuple(self.data_names[d] for d, c in enumerate(self.data_to_compact)
                     if d and not c)

    @property
    def unmatched(self) -> tuple[str, ...]:
        """Foreground model classes left out: their predictions count as background."""
        return tuple(self.model_names[i] for i in range(1, len(self.model_names))
                     if i not in self.evaluated)

    def truth(self, mask: torch.Tensor) -> torch.Tensor:
        """A data mask in compact classes."""
        if self.identity:
            return mask
        table = torch.tensor(self.data_to_compact, dtype=mask.dtype)
        return table[mask.long()]

    def prediction(self, pred: torch.Tensor) -> torch.Tensor:
        """A predicted class map in compact classes."""
        if self.identity:
            return pred
        table = np.zeros(len(self.model_names), np.int64)
        for compact, model_class in enumerate(self.evaluated, start=1):
            table[model_class] = compact
        return torch.from_numpy(table).to(pred.dtype)[pred.long()]

    def notes(self, data_label: str) -> list[str]:
        """What was mapped, dropped and left out, one sentence each (none for the identity)."""
        if self.identity:
            return []
        model = ", ".join(self.model_names)
        out = [f"{data_label}: class '{d}' evaluated as the model's '{m}'"
               for d, m in self.mapped.items() if normalise(d) != normalise(m)]
        why = ("not among --classes " + ",".join(self.names[1:]) if self.explicit
               else f"has no counterpart in the model ({model})")
        out += [f"{data_label}: class '{d}' {why}: counted as background" for d in self.dropped]
        out += [f"model class '{m}' is not evaluated on {data_label}: its predictions counted "
                "as background" for m in self.unmatched]
        return out

    def describe(self) -> dict[str, object]:
        """For the results record."""
        return {"class_map": self.mapped, "classes_dropped": list(self.dropped),
                "classes_not_evaluated": list(self.unmatched)}


def parse_classes(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """'head,brain' -> ('head', 'brain'); None, '' or 'auto' -> None (match by name)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(str(n).strip() for n in items if str(n).strip())
    if not names or names == ("auto",):
        return None
    return names


def map_classes(model_names: Sequence[str], data_names: Sequence[str], *,
                classes: str | Sequence[str] | None = None, data_label: str = "data",
                model_label: str = "model") -> ClassMapping:
    """Match model classes to data classes by name (see the module docstring).

    `classes` restricts the evaluation to these model classes (comma list or names). Error
    when no foreground class of the model has a counterpart in the data, or when a class
    given in `classes` is not the model's or has no counterpart.
    """
    model_names, data_names = tuple(map(str, model_names)), tuple(map(str, data_names))
    wanted = parse_classes(classes)
    data_fg = {i: n for i, n in enumerate(data_names) if i}
    if wanted is None:
        chosen = list(range(1, len(model_names)))
    else:
        model_fg = {i: n for i, n in enumerate(model_names) if i}
        chosen = []
        for name in wanted:
            index = _counterpart(name, model_fg)
            if index is None:
                raise UsdenoiseError(f"--classes {name}: not a class of the model {model_label} "
                                     f"({', '.join(model_names)})")
            if _counterpart(name, data_fg) is None:
                raise UsdenoiseError(f"--classes {name}: {data_label} has no such class "
                                     f"({', '.join(data_names)})")
            if index not in chosen:
                chosen.append(index)
    data_to_compact = [0] * len(data_names)
    evaluated: list[int] = []
    free = dict(data_fg)
    for model_class in chosen:
        d = _counterpart(model_names[model_class], free)
        if d is None:
            continue
        del free[d]
        evaluated.append(model_class)
        data_to_compact[d] = len(evaluated)
    if not evaluated:
        raise UsdenoiseError(
            f"{data_label}: masks have {len(data_names)} classes ({', '.join(data_names)}), "
            f"but the model {model_label} predicts {len(model_names)} "
            f"({', '.join(model_names)}) and none of its classes matches one of the data's "
            "by name")
    return ClassMapping(model_names, data_names, tuple(evaluated), tuple(data_to_compact),
                        explicit=wanted is not None)
