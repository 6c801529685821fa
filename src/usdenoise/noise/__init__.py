"""Speckle: noise models (`speckle`), physics B-mode formation (`physics`) and the
`simulate` job that writes clean/noisy pairs."""

from usdenoise.noise.speckle import (
    NOISES,
    Gamma,
    Gaussian,
    LogCompressed,
    Mixture,
    Multiplicative,
    NoiseModel,
    Physics,
    Rayleigh,
    RayleighBiased,
    Uniform,
    add_speckle,
    make_noise,
)

__all__ = [
    "NOISES", "Gamma", "Gaussian", "LogCompressed", "Mixture", "Multiplicative", "NoiseModel",
    "Physics", "Rayleigh", "RayleighBiased", "Uniform", "add_speckle", "make_noise",
]
