"""Median filter over a square window: a smoothing baseline. Reflect padding."""

from __future__ import annotations

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import check_odd_window, reflect_pad

#: at most this many window values are gathered at once (bounds memory on large images)
_CHUNK_VALUES = 1 << 24


class Median(Denoiser):
    name = "median"
    summary = "median filter, a smoothing baseline"
    params = (Param("window", 5, "side of the square window (odd)", kind=int, low=3, high=31),)
    # set from `params` by Denoiser.__init__
    window: int

    def check_config(self) -> None:
        check_odd_window(self.name, self.window)
        self.min_size = self.window

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        w, r = self.window, self.window // 2
        b, _, h, width = x.shape
        out = torch.empty_like(x)
        rows = max(1, _CHUNK_VALUES // (w * w * width))
        for i in range(b):
            p = reflect_pad(x[i : i + 1], r)[0, 0]
            for y0 in range(0, h, rows):
                y1 = min(h, y0 + rows)
                patches = p[y0 : y1 + 2 * r].unfold(0, w, 1).unfold(1, w, 1)
                # odd window: torch.median returns the exact middle value
                out[i, 0, y0:y1] = patches.reshape(y1 - y0, width, w * w).median(dim=-1).values
        return out
