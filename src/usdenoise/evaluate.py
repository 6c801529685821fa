"""Old import path, kept so existing code works: use `usdenoise.denoise.benchmark`.

`usdenoise.evaluate` is also the API function (`usdenoise.api.evaluate`); once this module
is imported it takes that attribute's place, so the module itself stays callable and
forwards a call to the function.
"""

import sys
import types

from usdenoise.api import evaluate as evaluate_images
from usdenoise.denoise.benchmark import EvaluationSettings, evaluate, parse_methods  # noqa: F401


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return evaluate_images(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
