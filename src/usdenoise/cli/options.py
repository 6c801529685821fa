"""Help texts and option declarations more than one command shares."""

from __future__ import annotations

import sys
from typing import Any

from usdenoise.core.errors import UsdenoiseError

DATA_HELP = "phantom, hc18:PATH, psfhs:PATH, zenodo:PATH or folder:PATH"

# the commands that compute with torch take --device; these two do not (the CLI tests check
# every other command has it): simulate draws speckle with a seeded CPU generator, so the
# images are the same on every machine, and inspect measures with small CPU statistics
NO_DEVICE = frozenset({"simulate", "inspect"})


def network_device(method: str, params: dict[str, Any], device: str) -> dict[str, Any]:
    """`--device` for a denoiser that runs a network (it has a `device` parameter); classic
    filters run on the CPU and are left alone. An explicit `device=` parameter wins."""
    from usdenoise.denoise.registry import DENOISERS

    kind = DENOISERS.get(str(method).strip().lower())
    if kind is None or "device" in params or not any(p.name == "device" for p in kind.params):
        return params
    return {**params, "device": device}


def renamed(command: str, new: str, old: str, value: Any, old_value: Any) -> Any:
    """A renamed option whose old spelling still works (hidden from --help): a one-line note
    on stderr; repeatable options merge, single ones may not be given both ways."""
    if not old_value:
        return value
    print(f"usdenoise: note: {command} {old} is deprecated; use {new}", file=sys.stderr)
    if isinstance(old_value, list):
        return [*(value or []), *old_value]
    if value is not None:
        raise UsdenoiseError(f"{command}: give {new} or its old spelling {old}, not both")
    return old_value
