"""Train/validation/test splits by subject (never by image), seeded, saved to `splits.json`.

    splits = split_by_subject(dataset.subjects, fractions=(0.7, 0.15, 0.15), seed=0)
    save_splits(run / "splits.json", splits, dataset=dataset, seed=0)
    splits = load_splits(run / "splits.json", dataset=dataset)   # same indices, checked

Every subject lands in exactly one part, so images of one subject never leak between
training and testing. Parts get whole subjects in proportion to `fractions` (largest
remainder rounding over the number of subjects); a part with a positive fraction gets at
least one subject when there are enough subjects.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import make_temp_file

PART_NAMES = ("train", "val", "test")
FORMAT_VERSION = 1


def _normalise_fractions(fractions: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(fractions, Mapping):
        items = {str(k): v for k, v in fractions.items()}
    else:
        values = list(fractions)
        if len(values) not in (2, 3):
            raise UsdenoiseError(
                f"split fractions {values}: give (train, test) or (train, val, test)"
            )
        names = PART_NAMES if len(values) == 3 else ("train", "test")
        items = dict(zip(names, values, strict=True))
    out: dict[str, float] = {}
    for name, value in items.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsdenoiseError(f"split fraction {name}={value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise UsdenoiseError(f"split fraction {name}={value!r} must be >= 0")
        out[name] = number
    total = sum(out.values())
    if not out or abs(total - 1.0) > 1e-6:
        raise UsdenoiseError(f"split fractions {out} must add up to 1 (they add up to {total:g})")
    return out


def _allocate(n_subjects: int, fractions: dict[str, float]) -> dict[str, int]:
    raw = {name: f * n_subjects for name, f in fractions.items()}
    counts = {name: int(math.floor(v)) for name, v in raw.items()}
    left = n_subjects - sum(counts.values())
    order = list(raw)
    by_remainder = sorted(order, key=lambda k: (-(raw[k] - counts[k]), order.index(k)))
    for name in by_remainder[:left]:
        counts[name] += 1
    # a part asked for must not be empty when subjects allow: take one from the largest part
    for name, f in fractions.items():
        if f > 0 and counts[name] == 0:
            donor = max(counts, key=lambda k: counts[k])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[name] += 1
    return counts


def split_by_subject(subjects: Sequence[Any], *,
                     fractions: Sequence[float] | Mapping[str, float] = (0.7, 0.15, 0.15),
                     seed: int = 0) -> dict[str, list[int]]:
    """Image indices per part; `subjects[i]` is the subject of image i.

    `fractions` is (train, val, test), (train, test) or a dict {part name: fraction}.
    Same subjects + same seed + same fractions -> same split.
    """
    fractions_ = _normalise_fractions(fractions)
    keys = [str(s) for s in subjects]
    if not keys:
        raise UsdenoiseError("cannot split an empty data set")
    unique = sorted(set(keys))
    order = np.random.default_rng(int(seed)).permutation(len(unique))
    counts = _allocate(len(unique), fractions_)
    part_of: dict[str, str] = {}
    start = 0
    for name, count in counts.items():
        for k in order[start:start + count]:
            part_of[unique[int(k)]] = name
        start += count
    out: dict[str, list[int]] = {name: [] for name in fractions_}
    for index, key in enumerate(keys):
        out[part_of[key]].append(index)
    return out


def _dataset_fields(dataset: Any) -> tuple[str | None, list[str] | None, list[str] | None]:
    """(spec, ids, subjects) of a data set object or a spec string."""
    if dataset is None:
        return None, None, None
    if isinstance(dataset, str):
        return dataset, None, None
    spec = getattr(dataset, "spec", None)
    ids = [str(i) for i in dataset.ids] if hasattr(dataset, "ids") else None
    subjects = [str(s) for s in dataset.subjects] if hasattr(dataset, "subjects") else None
    return spec, ids, subjects


def save_splits(path: str | os.PathLike, splits: Mapping[str, Sequence[int]], *,
                dataset: Any = None, seed: int | None = None,
                fractions: Sequence[float] | Mapping[str, float] | None = None,
                ids: Sequence[str] | None = None,
                subjects: Sequence[Any] | None = None) -> Path:
    """Write `splits.json` atomically.

    `dataset` is a data set object (its spec, ids and subjects are stored, so loading can
    check them) or just the DATA spec string. `ids`/`subjects` may be given directly.
    """
    path = Path(path)
    spec, ds_ids, ds_subjects = _dataset_fields(dataset)
    ids = [str(i) for i in ids] if ids is not None else ds_ids
    subjects = [str(s) for s in subjects] if subjects is not None else ds_subjects
    n_images = len(ids) if ids is not None else None
    parts: dict[str, dict[str, Any]] = {}
    seen: set[int] = set()
    for name, indices in splits.items():
        indices = [int(i) for i in indices]
        if seen.intersection(indices):
            raise UsdenoiseError(f"{path}: part {name!r} repeats images of another part")
        seen.update(indices)
        entry: dict[str, Any] = {"indices": indices}
        if ids is not None:
            if any(not 0 <= i < len(ids) for i in indices):
                raise UsdenoiseError(f"{path}: part {name!r} has an index outside the data set")
            entry["ids"] = [ids[i] for i in indices]
        if subjects is not None:
            entry["subjects"] = sorted({subjects[i] for i in indices})
        parts[name] = entry
    document = {
        "version": FORMAT_VERSION, "dataset": spec, "seed": seed,
        "fractions": (_normalise_fractions(fractions) if fractions is not None else None),
        "n_images": n_images, "splits": parts,
    }
    path.parent.mkdir(parents=True, exist_ok=True)

    tmp = make_temp_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_splits(path: str | os.PathLike, *, dataset: Any = None,
                ids: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Read `splits.json` back as {part: [index]}.

    With `dataset` (object or spec string) or `ids`, the file must describe that data set:
    same spec string, same image ids at the same indices; otherwise a UsdenoiseError says so.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsdenoiseError(f"{path}: splits file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsdenoiseError(f"{path}: not a readable splits file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("splits"), dict):
        raise UsdenoiseError(f"{path}: not a splits file (no 'splits' object)")
    out: dict[str, list[int]] = {}
    seen: set[int] = set()
    for name, entry in document["splits"].items():
        indices = entry.get("indices") if isinstance(entry, dict) else None
        if not isinstance(indices, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
            raise UsdenoiseError(f"{path}: part {name!r} has no valid list of indices")
        if seen.intersection(indices):
            raise UsdenoiseError(f"{path}: part {name!r} repeats images of another part")
        seen.update(indices)
        out[name] = list(indices)

    spec, ds_ids, _ = _dataset_fields(dataset)
    ids = [str(i) for i in ids] if ids is not None else ds_ids
    stored_spec = document.get("dataset")
    if spec is not None and stored_spec is not None and spec != stored_spec:
        raise UsdenoiseError(
            f"{path}: splits were made for data set {stored_spec!r}, not {spec!r}"
        )
    if ids is not None:
        n_stored = document.get("n_images")
        if n_stored is not None and n_stored != len(ids):
            raise UsdenoiseError(
                f"{path}: splits were made for {n_stored} images, the data set has {len(ids)}"
            )
        for name, indices in out.items():
            if any(i >= len(ids) for i in indices):
                raise UsdenoiseError(
                    f"{path}: part {name!r} has an index beyond the {len(ids)} images"
                )
            stored_ids = document["splits"][name].get("ids")
            if stored_ids is not None and [ids[i] for i in indices] != list(stored_ids):
                raise UsdenoiseError(
                    f"{path}: part {name!r} lists images that do not match this data set"
                )
    return out


def split_dataset(dataset: Any, *,
                  fractions: Sequence[float] | Mapping[str, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, list[int]]:
    """Split a data set by subject; a joined data set (`a+b`) is split part by part, so each
    part's test images are the same as when that part is used alone (no train/test leak)."""
    parts = getattr(dataset, "parts", None)
    if not parts:
        return split_by_subject(dataset.subjects, fractions=fractions, seed=seed)
    merged: dict[str, list[int]] = {}
    offset = 0
    for part in parts:
        for name, indices in split_by_subject(part.subjects, fractions=fractions,
                                              seed=seed).items():
            merged.setdefault(name, []).extend(offset + i for i in indices)
        offset += len(part)
    return merged


def split_or_load(path: str | os.PathLike, dataset: Any, *,
                  fractions: Sequence[float] | Mapping[str, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, list[int]]:
    """Load `path` if it exists (checked against `dataset`), else split by subject and save."""
    path = Path(path)
    if path.exists():
        return load_splits(path, dataset=dataset)
    splits = split_dataset(dataset, fractions=fractions, seed=seed)
    save_splits(path, splits, dataset=dataset, seed=seed, fractions=fractions)
    return splits
