# Types of the lazily loaded API (see __init__.py).
from usdenoise.api import Despeckle as Despeckle
from usdenoise.api import Despeckled as Despeckled
from usdenoise.api import add_speckle as add_speckle
from usdenoise.api import denoise_image as denoise_image
from usdenoise.api import evaluate as evaluate
from usdenoise.api import load_model as load_model

__version__: str
API: tuple[str, ...]
__all__: list[str]
