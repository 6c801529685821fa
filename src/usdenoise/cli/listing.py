"""One place that lists every family's registry for `usdenoise list`."""

from __future__ import annotations

import importlib


def _first_line(obj: object) -> str:
    doc = getattr(obj, "summary", "") or (getattr(obj, "__doc__", "") or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


# (family title, module, registry attribute); a module that does not exist yet is skipped
_FAMILIES = [
    ("Denoisers", "usdenoise.denoise.registry", "DENOISERS"),
    ("Segmenters", "usdenoise.models.segmenters", "SEGMENTERS"),
    ("Noise models", "usdenoise.noise.speckle", "NOISES"),
    ("Metrics", "usdenoise.metrics", "METRICS"),
    ("Losses", "usdenoise.losses.parser", "LOSSES"),
    ("Data sets", "usdenoise.data", "DATASETS"),
]


def families() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for title, module_name, attr in _FAMILIES:
        try:
            registry = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        rows = []
        for name, entry in registry.items():
            text = _first_line(entry)
            params = getattr(entry, "params", ())
            if params:
                text += "\n  " + "\n  ".join(p.describe() for p in params)
            rows.append((name, text))
        out[title] = rows
    return out
