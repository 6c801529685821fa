"""Mean (box) filter: the plainest smoothing baseline. Reflect padding."""

from __future__ import annotations

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import box_mean, check_odd_window


class Mean(Denoiser):
    name = "mean"
    summary = "box (moving average) filter, a smoothing baseline"
    params = (Param("window", 5, "side of the square window (odd)", kind=int, low=3, high=51),)
    # set from `params` by Denoiser.__init__
    window: int

    def check_config(self) -> None:
        check_odd_window(self.name, self.window)
        self.min_size = self.window

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        return box_mean(x, self.window)
