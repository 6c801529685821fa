"""Classic despeckling filters, one small module each, collected in `CLASSIC`."""

from __future__ import annotations

from usdenoise.denoise.base import Denoiser

# local-statistics and diffusion filters
from usdenoise.denoise.classic.enhanced_lee import EnhancedLee
from usdenoise.denoise.classic.frost import Frost
from usdenoise.denoise.classic.gaussian import Gaussian
from usdenoise.denoise.classic.kuan import Kuan
from usdenoise.denoise.classic.lee import Lee
from usdenoise.denoise.classic.mean import Mean
from usdenoise.denoise.classic.median import Median
from usdenoise.denoise.classic.perona_malik import PeronaMalik
from usdenoise.denoise.classic.srad import SRAD

# isort: split
# transform-domain and non-local filters
from usdenoise.denoise.classic.bilateral import Bilateral
from usdenoise.denoise.classic.bm3d import BM3D
from usdenoise.denoise.classic.nlm import NonLocalMeans
from usdenoise.denoise.classic.obnlm import OBNLM
from usdenoise.denoise.classic.tv import TotalVariation
from usdenoise.denoise.classic.wavelet import WaveletBayesShrink

# name -> Denoiser subclass; `usdenoise.denoise.registry.DENOISERS` merges this in.
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
    # transform-domain and non-local filters
    "bm3d": BM3D,
    "nlm": NonLocalMeans,
    "obnlm": OBNLM,
    "bilateral": Bilateral,
    "tv": TotalVariation,
    "wavelet": WaveletBayesShrink,
}
