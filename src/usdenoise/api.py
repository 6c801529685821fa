"""The Python API: images in the dtype and layout you have, the same dtype and layout back.

```python
import usdenoise

clean = usdenoise.denoise_image(scan)                 # numpy or torch, uint8/uint16/float
clean = usdenoise.denoise_image(scan, "lee", window=7)
noisy = usdenoise.add_speckle(clean, "rayleigh:0.5", seed=0)
scores = usdenoise.evaluate(clean, reference)         # {"psnr": ..., "ssim": ...}
model = usdenoise.load_model("runs/mine")             # a Denoiser (an nn.Module)
```

`usdenoise.denoise` is the subpackage of the denoisers; the function is
`usdenoise.denoise_image`, also importable as `from usdenoise.api import denoise`.

**Layouts**: `HW`, `HWC`, `CHW`, `BCHW` and `BHWC`. 2-D is `HW`; 4-D is `BCHW` (`BHWC` when
only its last axis has 1-4 entries); a 3-D array
is `HWC` for numpy when its last axis has 1-4 entries (else `CHW` when its first has), and
`CHW` for torch when its first axis has 1-4 entries (else `HWC`); pass `layout=` otherwise.
Channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; alpha is returned unchanged, every colour
channel is denoised as a gray image (channels that are all equal only once).

**Scaling** (explicit, never guessed from the values): `uint8` is divided by 255, `uint16` by
65535, `int8`/`int16` (non-negative values) by 127/32767; wider integers are refused (their
range says nothing about the data: convert to uint8/uint16 or give `data_range`). Floats must
lie in [0, 1] (up to 1e-4), else a one-line error; `data_range=255` divides by 255 first (and
multiplies back). The result is rounded and clipped back into integer dtypes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.base import RANGE_TOLERANCE, Denoiser
from usdenoise.denoise.registry import make_denoiser
from usdenoise.metrics.image import METRICS
from usdenoise.noise.speckle import add_speckle as add_speckle_tensor

__all__ = [
    "LAYOUTS", "Despeckle", "Despeckled", "add_speckle", "denoise", "denoise_image", "evaluate",
    "load_model",
]

Image = TypeVar("Image", np.ndarray, torch.Tensor)
Layout = Literal["HW", "HWC", "CHW", "BCHW", "BHWC"]
LAYOUTS: tuple[str, ...] = ("HW", "HWC", "CHW", "BCHW", "BHWC")

# integer dtypes and the value that maps to 1.0
_INT_SCALE_NP: dict[np.dtype[Any], float] = {
    np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0,
    np.dtype(np.int8): 127.0, np.dtype(np.int16): 32767.0,
}
_INT_SCALE_TORCH: dict[torch.dtype, float] = {
    torch.uint8: 255.0, torch.uint16: 65535.0, torch.int8: 127.0, torch.int16: 32767.0,
}
_FLOAT_TORCH = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ---------------------------------------------------------------------------- conversion


def guess_layout(image: np.ndarray | torch.Tensor, layout: str | None = None) -> str:
    """The layout of `image` (see the module docstring), or a UsdenoiseError saying what to
    pass as `layout=`."""
    ndim = image.ndim
    if layout is not None:
        key = layout.strip().upper()
        if key not in LAYOUTS:
            raise UsdenoiseError(f"layout={layout!r}: choose one of {', '.join(LAYOUTS)}")
        if len(key) != ndim:
            raise UsdenoiseError(
                f"layout={layout!r} needs a {len(key)}-D image, got shape {tuple(image.shape)}"
            )
        return key
    if ndim == 2:
        return "HW"
    if ndim == 4:
        if image.shape[1] in (1, 2, 3, 4) or image.shape[-1] not in (1, 2, 3, 4):
            return "BCHW"
        return "BHWC"
    if ndim == 3:
        first, last = image.shape[0] in (1, 2, 3, 4), image.shape[-1] in (1, 2, 3, 4)
        if isinstance(image, np.ndarray):
            if last or first:
                return "HWC" if last else "CHW"
        elif first or last:
            return "CHW" if first else "HWC"
    raise UsdenoiseError(
        f"cannot tell the layout of an image of shape {tuple(image.shape)}: pass "
        f"layout= one of {', '.join(LAYOUTS)} (channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)"
    )


def _bchw_view(a: Image, layout: str) -> Image:
    """A [B, C, H, W] *view* of `a` (writing into it writes into `a`)."""
    if isinstance(a, np.ndarray):
        views: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "HW": lambda v: v[None, None], "HWC": lambda v: np.moveaxis(v, -1, 0)[None],
            "CHW": lambda v: v[None], "BCHW": lambda v: v,
            "BHWC": lambda v: np.moveaxis(v, -1, 1),
        }
        return views[layout](a)
    tviews: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "HW": lambda v: v[None, None], "HWC": lambda v: v.movedim(-1, 0)[None],
        "CHW": lambda v: v[None], "BCHW": lambda v: v, "BHWC": lambda v: v.movedim(-1, 1),
    }
    return tviews[layout](a)


def _scale_of(image: np.ndarray | torch.Tensor, data_range: float | None, what: str) -> float:
    """The value that maps to 1.0 (see the module docstring)."""
    if data_range is not None:
        if not float(data_range) > 0:
            raise UsdenoiseError(f"{what}: data_range must be > 0, got {data_range}")
        return float(data_range)
    if isinstance(image, np.ndarray):
        dtype_name, is_float = str(image.dtype), image.dtype.kind == "f"
        scale = _INT_SCALE_NP.get(image.dtype)
    else:
        dtype_name, is_float = str(image.dtype), image.dtype in _FLOAT_TORCH
        scale = _INT_SCALE_TORCH.get(image.dtype)
    if is_float:
        return 1.0
    if scale is None:
        raise UsdenoiseError(
            f"{what}: unsupported dtype {dtype_name}; use uint8/uint16 (scaled by 255/65535), "
            "floats in [0, 1], or give data_range= (the value that means white)"
        )
    return scale


def _unit_float(view: np.ndarray | torch.Tensor, scale: float, what: str,
                data_range: float | None) -> torch.Tensor:
    """`view` as float32 on the CPU divided by `scale`, checked to lie in [0, 1]."""
    if isinstance(view, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(view, dtype=np.float32))
    else:
        t = torch.Tensor.as_subclass(view.detach(), torch.Tensor).to("cpu", torch.float32)
    if scale != 1.0:
        t = t / scale
    if t.numel() == 0:
        raise UsdenoiseError(f"{what}: empty image of shape {tuple(view.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise UsdenoiseError(f"{what}: image contains NaN/Inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        given = f" / data_range {data_range:g}" if data_range is not None else ""
        hint = "; data that runs to 255 needs data_range=255" if 1.5 < hi <= 255.5 else ""
        raise UsdenoiseError(
            f"{what}: values{given} span [{lo:.4g}, {hi:.4g}], outside [0, 1]: pass integers "
            f"(uint8/uint16), floats in [0, 1], or data_range= the value that means white{hint}"
        )
    return t.clamp(0.0, 1.0)


def _store(view: np.ndarray | torch.Tensor, channel: int, y: torch.Tensor, scale: float,
           is_int: bool) -> None:
    """Write float32 `y[B, H, W]` in [0, 1] into channel `channel` of the view, in its dtype."""
    y = y.double() * scale
    if is_int:
        y = torch.round(y).clamp(0.0, scale)
    if isinstance(view, np.ndarray):
        view[:, channel] = y.numpy().astype(view.dtype)
    else:
        with torch.no_grad():
            view[:, channel] = y.to(torch.int64 if is_int else view.dtype).to(view.device,
                                                                              view.dtype)


def _apply(image: Image, fn: Callable[[torch.Tensor], torch.Tensor], what: str, *,
           layout: str | None, data_range: float | None, merge_equal: bool = True) -> Image:
    """Run `fn([N, 1, H, W] float32 in [0, 1]) -> same` on every colour channel of `image`
    and return a copy of `image` (same type, dtype, layout, device) holding the result."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise UsdenoiseError(f"{what}: expected a numpy array or torch tensor, "
                             f"got {type(image).__name__}")
    key = guess_layout(image, layout)
    scale = _scale_of(image, data_range, what)
    if isinstance(image, np.ndarray):
        out: Any = np.array(image, copy=True)
        is_int = image.dtype.kind in "iu"
    else:
        out = image.detach().clone()
        is_int = not image.dtype.is_floating_point and image.dtype != torch.bool
    view = _bchw_view(out, key)
    batch, channels = int(view.shape[0]), int(view.shape[1])
    if channels not in (1, 2, 3, 4):
        raise UsdenoiseError(
            f"{what}: {channels} channels in layout {key} (shape {tuple(image.shape)}); "
            "expected 1 gray, 2 gray+alpha, 3 RGB or 4 RGBA (pass layout= if the axes differ)"
        )
    colour = 3 if channels >= 3 else 1  # the trailing channel of 2 and 4 is alpha
    x = _unit_float(view[:, :colour], scale, what, data_range)  # [B, colour, H, W]
    same = colour == 1 or merge_equal and all(
        torch.equal(x[:, 0], x[:, c]) for c in range(1, colour))
    planes = x[:, :1] if same else x.reshape(batch * colour, 1, *x.shape[-2:])
    y = fn(planes.contiguous())
    if y.shape != planes.shape:
        raise UsdenoiseError(f"{what}: got shape {tuple(y.shape)} back for {tuple(planes.shape)}")
    y = y.detach().to("cpu", torch.float32).reshape(batch, -1, *x.shape[-2:])
    for c in range(colour):
        _store(view, c, y[:, 0 if same else c], scale, is_int)
    return out


# ---------------------------------------------------------------------------- denoisers


def _frozen(params: Mapping[str, Any]) -> tuple[tuple[str, Hashable], ...] | None:
    try:
        items = tuple(sorted(params.items()))
        hash(items)
    except TypeError:
        return None
    return items


@lru_cache(maxsize=8)
def _cached(method: str, items: tuple[tuple[str, Hashable], ...]) -> Denoiser:
    return make_denoiser(method, **dict(items))


def get_denoiser(method: str | Denoiser = "default", **params: Any) -> Denoiser:
    """A registered denoiser by name (built once per name and parameters, then reused), or
    `method` itself when it already is a `Denoiser` (then `params` must be empty)."""
    if isinstance(method, Denoiser):
        if params:
            raise UsdenoiseError(f"{method.name}: parameters {sorted(params)} given with a "
                                 "ready-made denoiser; set them when building it")
        return method
    if not isinstance(method, str):
        raise UsdenoiseError(f"method: expected a name or a Denoiser, got {type(method).__name__}")
    items = _frozen(params)
    return make_denoiser(method, **params) if items is None else _cached(method, items)


def denoise_image(
    image: Image,
    method: str | Denoiser = "default",
    *,
    layout: Layout | None = None,
    data_range: float | None = None,
    **params: Any,
) -> Image:
    """Denoise `image` with `method` (a registered name or a `Denoiser`); returns the same
    type (numpy array or torch tensor, on the same device), dtype, shape and layout.

    `params` are the method's parameters (`usdenoise list` shows them), `strength` included.
    Scaling and layouts: see the module docstring. Bad input is a one-line UsdenoiseError.
    """
    denoiser = get_denoiser(method, **params)
    return _apply(image, denoiser.denoise, f"denoise ({denoiser.name})", layout=layout,
                  data_range=data_range)


#: `from usdenoise.api import denoise` (the top-level name `usdenoise.denoise` is the subpackage)
denoise = denoise_image


def load_model(path: str | os.PathLike[str], **params: Any) -> Denoiser:
    """A denoiser from a checkpoint: `X.safetensors`, its `X.json` sidecar or a run folder.

    `params` are those of method `network` (`tile`, `overlap`, `device`, `strength`, ...).
    The result is an `nn.Module`: `model(x)` denoises a float `[B, 1, H, W]` tensor in [0, 1];
    `usdenoise.denoise_image(image, model)` takes any dtype and layout.
    """
    return make_denoiser("network", checkpoint=os.fspath(path), **params)


def add_speckle(
    image: Image,
    noise: str = "rayleigh:0.25",
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    layout: Layout | None = None,
    data_range: float | None = None,
) -> Image:
    """Speckle `image` with a noise spec (`usdenoise list` shows the models); same type,
    dtype and layout back. `seed` (or a `generator`) makes it reproducible."""
    if seed is not None and generator is not None:
        raise UsdenoiseError("add_speckle: give seed or generator, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))

    def speckle(x: torch.Tensor) -> torch.Tensor:
        return add_speckle_tensor(x, noise, generator=generator)

    return _apply(image, speckle, f"add_speckle ({noise})", layout=layout,
                  data_range=data_range)


def evaluate(
    image: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    *,
    metrics: Sequence[str] = ("psnr", "ssim"),
    layout: Layout | None = None,
    data_range: float | None = None,
) -> dict[str, float]:
    """Full-reference quality of `image` against the clean `reference` (same shape, layout
    and scaling rules as `denoise_image`): `{metric: mean over images and channels}`.

    Metrics: any of `psnr`, `ssim`, `ms_ssim`, `epi`. The no-reference metrics (ENL, CNR,
    gCNR, SSI) need regions of interest: use `usdenoise.metrics` for them.
    """
    full_reference = sorted(k for k, m in METRICS.items() if m.inputs[:2] == ("x", "ref"))
    for name in metrics:
        if name not in full_reference:
            raise UsdenoiseError(f"evaluate: unknown metric {name!r} "
                                 f"(full-reference: {', '.join(full_reference)})")
    if tuple(image.shape) != tuple(reference.shape):
        raise UsdenoiseError(f"evaluate: image {tuple(image.shape)} and reference "
                             f"{tuple(reference.shape)} differ in shape")
    planes: list[torch.Tensor] = []

    def keep(x: torch.Tensor) -> torch.Tensor:
        planes.append(x)
        return x

    for which, a in (("image", image), ("reference", reference)):
        what = f"evaluate ({which})"
        if isinstance(a, np.ndarray):
            _apply(a, keep, what, layout=layout, data_range=data_range, merge_equal=False)
        else:
            _apply(a, keep, what, layout=layout, data_range=data_range, merge_equal=False)
    x, ref = planes
    return {name: float(METRICS[name](x, ref).float().mean()) for name in metrics}


# ---------------------------------------------------------------------------- MONAI transforms


class Despeckle:
    """MONAI-style array transform: `Despeckle("default")(img)` denoises a channel-first
    `[C, H, W]` image (numpy, tensor or MONAI `MetaTensor`, whose metadata is kept).

    Works inside `monai.transforms.Compose` (MONAI is not needed to build it). MONAI's
    `LoadImage` gives floats in the file's own range: use `data_range=255` for 8-bit files,
    or `ScaleIntensity()` before it.
    """

    def __init__(self, method: str | Denoiser = "default", *, data_range: float | None = None,
                 **params: Any) -> None:
        self.denoiser = get_denoiser(method, **params)
        self.data_range = data_range

    def __call__(self, img: Image) -> Image:
        layout: Layout | None = "CHW" if img.ndim == 3 else None
        return denoise_image(img, self.denoiser, layout=layout, data_range=self.data_range)


class Despeckled:
    """MONAI-style dictionary transform: `Despeckled(keys=["image"], method="default")`
    applies `Despeckle` to `data[key]` for every key (a missing key is an error unless
    `allow_missing_keys`); other entries are passed on unchanged."""

    def __init__(self, keys: str | Sequence[str], method: str | Denoiser = "default", *,
                 allow_missing_keys: bool = False, data_range: float | None = None,
                 **params: Any) -> None:
        self.keys: tuple[str, ...] = (keys,) if isinstance(keys, str) else tuple(keys)
        self.allow_missing_keys = allow_missing_keys
        self.transform = Despeckle(method, data_range=data_range, **params)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        for key in self.keys:
            if key not in out:
                if self.allow_missing_keys:
                    continue
                raise UsdenoiseError(f"Despeckled: key {key!r} not in the data "
                                     f"(keys: {', '.join(map(str, out))})")
            out[key] = self.transform(out[key])
        return out
