"""Classic despeckling filters, one small module each, collected in `CLASSIC`."""

from __future__ import annotations

# local-statistics and diffusion filters
from usdenoise.classic.enhanced_lee import EnhancedLee
from usdenoise.classic.frost import Frost
from usdenoise.classic.gaussian import Gaussian
from usdenoise.classic.kuan import Kuan
from usdenoise.classic.lee import Lee
from usdenoise.classic.mean import Mean
from usdenoise.classic.median import Median
from usdenoise.classic.perona_malik import PeronaMalik
from usdenoise.classic.srad import SRAD
from usdenoise.denoiser import Denoiser

# name -> Denoiser subclass; `usdenoise.denoisers.DENOISERS` merges this in.
CLASSIC: dict[str, type[Denoiser]] = {
    # local-statistics and diffusion filters
    "lee": Lee,
    "enhanced_lee": EnhancedLee,
    "frost": Frost,
    "kuan": Kuan,
    "srad": SRAD,
    "perona_malik": PeronaMalik,
    "mean": Mean,
    "median": Median,
    "gaussian": Gaussian,
}
