"""usdenoise: speckle removal for ultrasound images and the downstream segmentation check.

The Python API (`usdenoise.api`, loaded on first use so `import usdenoise` stays light):

- `usdenoise.denoise_image(image, method="default", **params)`: numpy or torch, any common
  dtype and layout in, the same back (`usdenoise.denoise` is the subpackage of the
  denoisers; `from usdenoise.api import denoise` is the same function under that name);
- `usdenoise.load_model(path)`: a denoiser (an `nn.Module`) from a checkpoint or run folder;
- `usdenoise.add_speckle(image, noise)`, `usdenoise.evaluate(image, reference)`;
- `usdenoise.Despeckle`, `usdenoise.Despeckled`: MONAI-style array and dictionary transforms.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

API = ("Despeckle", "Despeckled", "add_speckle", "denoise_image", "evaluate", "load_model")
__all__ = ["__version__", *API]

# the types of these names are declared in __init__.pyi (an import here would be a
# dependency of every layer on the top one for import-linter)


def __getattr__(name: str) -> Any:
    """The API functions, imported from `usdenoise.api` on first use (PEP 562)."""
    if name in API:
        return getattr(importlib.import_module("usdenoise.api"), name)
    raise AttributeError(f"module 'usdenoise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
