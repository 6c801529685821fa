"""Old import path, kept so existing code works: use `usdenoise.denoise.benchmark`."""

from usdenoise.denoise.benchmark import EvaluationSettings, evaluate, parse_methods  # noqa: F401
