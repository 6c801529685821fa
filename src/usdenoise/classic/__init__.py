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

# isort: split
# transform-domain and non-local filters
from usdenoise.classic.bilateral import Bilateral
from usdenoise.classic.bm3d import BM3D
from usdenoise.classic.nlm import NonLocalMeans
from usdenoise.classic.obnlm import OBNLM
from usdenoise.classic.tv import TotalVariation
from usdenoise.classic.wavelet import WaveletBayesShrink

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
    # transform-domain and non-local filters
    "bm3d": BM3D,
    "nlm": NonLocalMeans,
    "obnlm": OBNLM,
    "bilateral": Bilateral,
    "tv": TotalVariation,
    "wavelet": WaveletBayesShrink,
}
