"""Speckle models: moments against their formulas, references, properties and bad specs.

Tolerances: means within 6 standard errors; variances within 3 % (about 5 standard errors for
the samples drawn here, 4e5 values, heavier tails included); correlated `physics` speckle,
with far fewer independent values, gets 0.05 on the mean and 8 % on the variance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.noise.physics import (
    EULER_GAMMA,
    SPECKLE_DB,
    exponential,
    gamma_variates,
    to_display,
    to_envelope,
)
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

N = 400_000
FT_SKEWNESS = -12 * math.sqrt(6) * 1.2020569031595942 / math.pi**3  # Gumbel-min, -1.1395

MULTIPLICATIVE = [
    (Gaussian, 0.01),
    (Gaussian, 0.1),
    (Uniform, 0.01),
    (Uniform, 0.1),
    (Rayleigh, 0.1),
    (Rayleigh, 0.75),
    (RayleighBiased, 0.25),
    (Gamma, 0.5),
    (Gamma, 1.0),
    (Gamma, 4.0),
    (Gamma, 16.0),
]
ALL_SPECS = [
    "gaussian:0.04",
    "uniform:0.04",
    "rayleigh:0.25",
    "rayleigh_biased:0.25",
    "gamma:4",
    "logcompressed:0.1",
    "physics:0.1",
    "rayleigh:0.1-0.75",
    "mixture:rayleigh:0.1-0.75|gamma:1-8|physics:0.05-0.2",
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat(value: float, batch: int = 4, size: int = 64, dtype=torch.float32) -> torch.Tensor:
    return torch.full((batch, 1, size, size), value, dtype=dtype)


def lag1(r: torch.Tensor, dim: int) -> float:
    """Lag-1 autocorrelation of a residual [B,C,H,W] along H (dim=-2) or W (dim=-1)."""
    r = r - r.mean(dim=(-2, -1), keepdim=True)
    a = r.narrow(dim, 1, r.shape[dim] - 1)
    b = r.narrow(dim, 0, r.shape[dim] - 1)
    return float((a * b).mean() / (r * r).mean())


def check_moments(sample: torch.Tensor, mean: float, var: float, *, rel_var: float = 0.03):
    sample = sample.double().flatten()
    n = sample.numel()
    assert abs(sample.mean().item() - mean) <= 6 * math.sqrt(var / n) + 1e-12
    assert sample.var().item() == pytest.approx(var, rel=rel_var)


# --- moments of the multiplicative factor -----------------------------------------------------


@pytest.mark.parametrize(("cls", "level"), MULTIPLICATIVE)
def test_factor_moments_match_formula(cls, level):
    model = cls(level)
    f = model.factor((N,), level, gen(1), dtype=torch.float64)
    mean, var = cls.moments(level)
    check_moments(f, mean, var)


def test_factor_moment_formulas():
    s = 0.3
    assert Rayleigh.moments(s) == (1.0, pytest.approx((4 - math.pi) / 2 * s * s))
    assert RayleighBiased.moments(s)[0] == pytest.approx(1 + s * math.sqrt(math.pi / 2))
    assert Gamma.moments(4.0) == (1.0, 0.25)
    assert Gaussian.moments(0.04) == Uniform.moments(0.04) == (1.0, 0.04)


@pytest.mark.parametrize(
    ("spec", "mean", "var"),
    [
        ("gaussian:0.01", 1.0, 0.01),
        ("uniform:0.05", 1.0, 0.05),
        ("rayleigh:0.1", 1.0, (4 - math.pi) / 2 * 0.01),
        ("rayleigh:0.5", 1.0, (4 - math.pi) / 2 * 0.25),
        ("rayleigh_biased:0.25", 1 + 0.25 * math.sqrt(math.pi / 2), (4 - math.pi) / 2 / 16),
        ("gamma:8", 1.0, 1 / 8),
    ],
)
def test_model_on_flat_image_matches_formula(spec, mean, var):
    """Through the whole model: a flat 0.25 image, so clipping at 1 needs a factor above 4."""
    x = flat(0.25, batch=25, size=128, dtype=torch.float64)
    y = make_noise(spec)(x, generator=gen(2))
    assert (y < 1).all()
    check_moments(y / 0.25, mean, var)


def test_uniform_support():
    f = Uniform(0.03).factor((N,), 0.03, gen(3), dtype=torch.float64)
    a = math.sqrt(3 * 0.03)
    assert f.min() >= 1 - a and f.max() <= 1 + a
    assert f.min() < 1 - 0.99 * a and f.max() > 1 + 0.99 * a


def test_rayleigh_is_rayleigh_and_keeps_brightness():
    s = 0.25
    f = Rayleigh(s).factor((N,), s, gen(4), dtype=torch.float64)
    r = (f - 1 + s * math.sqrt(math.pi / 2)).numpy()
    assert scipy.stats.kstest(r, "rayleigh", args=(0, s)).pvalue > 1e-3
    x = flat(0.4, batch=4, size=128)
    assert make_noise("rayleigh:0.25")(x, generator=gen(5)).mean().item() == pytest.approx(
        0.4, abs=2e-3
    )
    assert make_noise("rayleigh_biased:0.25")(x, generator=gen(5)).mean().item() > 0.5


@pytest.mark.parametrize("looks", [0.5, 1.0, 3.0, 16.0])
def test_gamma_sampler_matches_scipy(looks):
    g = gamma_variates(torch.tensor(looks), (N,), gen(6), torch.device("cpu"), torch.float64)
    assert scipy.stats.kstest(g.numpy(), "gamma", args=(looks, 0, 1)).pvalue > 1e-3
    check_moments(g, looks, looks)  # Gamma(k, 1): mean k, variance k


def test_gamma_sampler_per_image_levels():
    k = torch.tensor([0.7, 2.0, 9.0]).view(3, 1).double()
    g = gamma_variates(k, (3, N // 3), gen(7), torch.device("cpu"), torch.float64)
    for row, kk in zip(g, k.flatten().tolist(), strict=True):
        check_moments(row, kk, kk)


# --- references --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "var"), [(0.3, 0.01), (0.5, 0.05), (0.9, 0.04)])
def test_gaussian_matches_skimage_random_noise(value, var):
    """Same statistics as skimage.util.random_noise(mode="speckle"), clipping included."""
    from skimage.util import random_noise

    image = np.full((400, 400), value)
    ref = random_noise(image, mode="speckle", var=var, rng=0)
    x = torch.from_numpy(image).view(1, 1, 400, 400)
    y = make_noise(f"gaussian:{var}")(x, generator=gen(8)).numpy().ravel()
    se = math.sqrt(var) * value / 400
    assert abs(y.mean() - ref.mean()) < 8 * se
    assert y.std() == pytest.approx(ref.std(), rel=0.02)
    assert (y == 1).mean() == pytest.approx((ref == 1).mean(), abs=0.005)
    assert (y == 0).mean() == pytest.approx((ref == 0).mean(), abs=0.005)


def test_logcompressed_is_envelope_speckle_then_log_compression():
    """The closed form equals the literal route: envelope x Rayleigh speckle, log compression."""
    sigma = 0.15
    dr = SPECKLE_DB / sigma
    assert LogCompressed.dynamic_range_db(sigma) == pytest.approx(dr)
    x = torch.rand(2, 1, 32, 32, generator=gen(9), dtype=torch.float64) * 0.8 + 0.1
    y = LogCompressed(sigma)(x, generator=gen(10))
    s = exponential(tuple(x.shape), gen(10), x.device, torch.float64)
    envelope = to_envelope(x, dr) * torch.sqrt(s * math.exp(EULER_GAMMA))
    literal = to_display(envelope, dr).clamp(0, 1)
    torch.testing.assert_close(y, literal, rtol=0, atol=1e-12)
    torch.testing.assert_close(to_display(to_envelope(x, 60.0), 60.0), x)


def test_logcompressed_moments_and_skew():
    sigma = 0.05
    x = flat(0.5, batch=25, size=128, dtype=torch.float64)
    d = (LogCompressed(sigma)(x, generator=gen(11)) - 0.5).flatten()
    check_moments(d, 0.0, sigma**2)
    skew = float(scipy.stats.skew(d.numpy()))
    assert skew == pytest.approx(FT_SKEWNESS, abs=0.05)


# --- physics -------------------------------------------------------------------------------------


def test_physics_speckle_is_standardised_on_flat_image():
    sigma = 0.05
    model = Physics(sigma)
    x = flat(0.5, batch=8, size=128, dtype=torch.float64)
    base, z = model.speckle_field(x, generator=gen(12))
    torch.testing.assert_close(base, x, rtol=0, atol=1e-9)  # unit-energy PSF: brightness kept
    z = z.flatten()
    assert abs(z.mean().item()) < 0.05
    assert z.var().item() == pytest.approx(1.0, rel=0.08)
    assert float(scipy.stats.skew(z.numpy())) == pytest.approx(FT_SKEWNESS, abs=0.15)
    y = model(x, generator=gen(12))
    torch.testing.assert_close(y, (base + sigma * z.view_as(x)).clamp(0, 1))


def test_physics_noise_free_keeps_regions_and_blurs_edges():
    x = torch.full((1, 1, 64, 64), 0.3, dtype=torch.float64)
    x[..., 32:] = 0.8
    model = Physics(0.1)
    b = model.noise_free(x)
    # more than the PSF half-width (10 px laterally) from the edge: unchanged
    torch.testing.assert_close(b[..., :21], x[..., :21], rtol=0, atol=1e-6)
    torch.testing.assert_close(b[..., 43:], x[..., 43:], rtol=0, atol=1e-6)
    edge = b[0, 0, 10, 30:34]
    assert (edge > 0.3 + 1e-3).all() and (edge < 0.8 - 1e-3).all()
    # sigma = 0: the noise-free B-mode
    torch.testing.assert_close(Physics(0.0)(x, generator=gen(0)), b)


def test_physics_follows_echogenicity():
    x = torch.full((2, 1, 96, 96), 0.2)
    x[..., 30:66, 30:66] = 0.7
    y = Physics(0.08)(x, generator=gen(13))
    inside, outside = y[..., 36:60, 36:60].mean(), y[..., :20, :].mean()
    assert inside.item() == pytest.approx(0.7, abs=0.02)
    assert outside.item() == pytest.approx(0.2, abs=0.02)


def test_correlation_physics_correlated_others_white():
    x = flat(0.25, batch=4, size=128, dtype=torch.float64)
    for spec in ALL_SPECS[:6]:
        r = make_noise(spec)(x, generator=gen(14)) - x
        for dim in (-2, -1):
            assert abs(lag1(r, dim)) < 0.02, (spec, dim)
    r = make_noise("physics:0.05")(flat(0.5, 4, 128, torch.float64), generator=gen(14)) - 0.5
    # correlation length above one pixel: lag-1 autocorrelation above 1/e along both axes
    assert lag1(r, -2) > 1 / math.e
    assert lag1(r, -1) > 1 / math.e
    wide = Physics(0.05, lateral_sigma=5.0)(flat(0.5, 4, 128, torch.float64), generator=gen(14))
    assert lag1(wide - 0.5, -1) > lag1(r, -1)


# --- properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("gaussian", [0.005, 0.02, 0.08]),
        ("uniform", [0.005, 0.02, 0.08]),
        ("rayleigh", [0.1, 0.25, 0.5, 0.75]),
        ("rayleigh_biased", [0.1, 0.25, 0.5, 0.75]),
        ("gamma", [16, 4, 1]),  # fewer looks is stronger
        ("logcompressed", [0.02, 0.05, 0.1, 0.2]),
        ("physics", [0.02, 0.05, 0.1, 0.2]),
    ],
)
def test_output_variance_grows_with_strength(name, levels):
    x = flat(0.3, batch=2, size=64)
    variances = [make_noise(f"{name}:{v}")(x, generator=gen(15)).var().item() for v in levels]
    assert all(a < b for a, b in zip(variances, variances[1:], strict=False)), variances


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_same_seed_same_output_different_seed_different(spec):
    x = torch.rand(4, 1, 32, 40, generator=gen(16))
    model = make_noise(spec)
    a, b, c = (model(x, generator=gen(s)) for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("spec", ALL_SPECS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_dtype_and_device_follow_input(spec, dtype):
    x = torch.rand(2, 1, 16, 16, generator=gen(17)).to(dtype)
    y = make_noise(spec)(x, generator=gen(18))
    assert y.dtype == dtype and y.device == x.device and y.shape == x.shape
    assert torch.isfinite(y.float()).all()


def test_float64_keeps_precision():
    x = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    y = make_noise("gaussian:0.01")(x, generator=gen(19))
    f = Gaussian(0.01).factor((1, 1, 8, 8), 0.01, gen(19), dtype=torch.float64)
    torch.testing.assert_close(y, 0.5 * f, rtol=0, atol=1e-15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_cuda_input_with_cpu_or_cuda_generator(spec):
    x = torch.rand(2, 1, 32, 32, generator=gen(20)).cuda()
    model = make_noise(spec)
    y = model(x, generator=gen(21))
    assert y.device == x.device
    torch.testing.assert_close(y.cpu(), model(x.cpu(), generator=gen(21)), rtol=0, atol=1e-4)
    cuda_gen = torch.Generator(device="cuda").manual_seed(3)
    z1 = model(x, generator=cuda_gen)
    z2 = model(x, generator=torch.Generator(device="cuda").manual_seed(3))
    assert z1.device == x.device and torch.equal(z1, z2)


def test_works_on_several_channels_and_odd_sizes():
    x = torch.rand(3, 2, 17, 23, generator=gen(22))
    for spec in ALL_SPECS:
        assert make_noise(spec)(x, generator=gen(23)).shape == x.shape


def test_global_rng_without_generator():
    torch.manual_seed(0)
    a = make_noise("gamma:2")(flat(0.5, 1, 16))
    torch.manual_seed(0)
    assert torch.equal(a, make_noise("gamma:2")(flat(0.5, 1, 16)))


# --- ranges and mixtures -------------------------------------------------------------------------


def test_range_draws_one_level_per_image():
    model = make_noise("rayleigh:0.1-0.75")
    assert isinstance(model, Rayleigh) and (model.low, model.high) == (0.1, 0.75)
    x = flat(0.3, batch=64, size=32)
    y, info = model.draw(x, generator=gen(24))
    levels = np.array([level for _, level in info])
    assert {name for name, _ in info} == {"rayleigh"}
    assert levels.min() >= 0.1 and levels.max() <= 0.75
    assert levels.min() < 0.2 and levels.max() > 0.65
    # each image's spread follows its own level
    stds = (y / 0.3).flatten(1).std(1).numpy()
    expected = math.sqrt((4 - math.pi) / 2) * levels
    np.testing.assert_allclose(stds, expected, rtol=0.12)


def test_fixed_level_reports_exact_level():
    _, info = make_noise("gaussian:0.04").draw(flat(0.5, 2, 8), generator=gen(0))
    assert info == [("gaussian", 0.04), ("gaussian", 0.04)]


def test_mixture_spec_picks_one_component_per_image():
    spec = "mixture:rayleigh:0.1-0.75|physics:0.05-0.2"
    model = make_noise(spec)
    assert isinstance(model, Mixture) and model.spec == spec
    x = flat(0.4, batch=32, size=48)
    y, info = model.draw(x, generator=gen(25))
    names = [n for n, _ in info]
    assert set(names) == {"rayleigh", "physics"}
    for i, (name, level) in enumerate(info):
        r = y[i : i + 1] - 0.4
        if name == "rayleigh":
            assert 0.1 <= level <= 0.75 and abs(lag1(r, -1)) < 0.1
        else:
            assert 0.05 <= level <= 0.2 and lag1(r, -1) > 0.5


def test_mixture_python_api_and_weights():
    only_gamma = Mixture(["rayleigh:0.25", Gamma(2.0)], weights=[0, 1])
    _, info = only_gamma.draw(flat(0.5, 8, 8), generator=gen(26))
    assert {n for n, _ in info} == {"gamma"}
    assert only_gamma.spec == "mixture:rayleigh:0.25|gamma:2"
    for bad in ([], ["rayleigh:0.1"]):
        with pytest.raises(UsdenoiseError):
            Mixture(bad, weights=[1, 1]) if bad else Mixture(bad)
    with pytest.raises(UsdenoiseError, match="weights"):
        Mixture(["rayleigh:0.1"], weights=[-1])


# --- API -----------------------------------------------------------------------------------------


def test_registry_and_specs_round_trip():
    assert set(NOISES) == {
        "gaussian", "uniform", "rayleigh", "rayleigh_biased", "gamma", "logcompressed",
        "physics", "mixture",
    }
    for name, cls in NOISES.items():
        assert issubclass(cls, NoiseModel) and cls.name == name and cls.__doc__
        assert cls.summary
    for spec in ALL_SPECS + ["gamma:1e-3", "rayleigh:0.25-0.25"]:
        model = make_noise(spec)
        assert make_noise(model.spec).spec == model.spec
    assert make_noise("gamma:1e-3").low == 1e-3
    assert make_noise(" Rayleigh : 0.5 ").spec == "rayleigh:0.5"
    model = Rayleigh(0.3)
    assert make_noise(model) is model
    assert isinstance(model, Multiplicative)


def test_add_speckle_keeps_shape():
    for shape in [(16, 20), (1, 16, 20), (2, 1, 16, 20)]:
        x = torch.full(shape, 0.5)
        y = add_speckle(x, "rayleigh:0.25", generator=gen(27))
        assert y.shape == x.shape and not torch.equal(x, y)
    torch.testing.assert_close(
        add_speckle(torch.full((16, 20), 0.5), "gamma:2", generator=gen(1)),
        add_speckle(torch.full((1, 1, 16, 20), 0.5), "gamma:2", generator=gen(1))[0, 0],
    )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("speckle:0.1", "unknown noise 'speckle'"),
        ("rayleigh:-0.1", "below the minimum"),
        ("rayleigh:abc", "not a number"),
        ("rayleigh:nan", "not a finite number"),
        ("rayleigh:inf", "not a finite number"),
        ("rayleigh", "give a strength"),
        ("rayleigh:", "give a strength"),
        ("rayleigh:0.75-0.1", "runs backwards"),
        ("rayleigh:0.1-x", "not a number"),
        ("gamma:0", "must be positive"),
        ("gamma:0-4", "must be positive"),
        ("", "empty noise"),
        (":0.1", "missing name"),
        ("mixture", "list the components"),
        ("mixture:rayleigh:0.1||gamma:4", "empty component"),
        ("mixture:rayleigh:0.1|speckle:3", "unknown noise 'speckle'"),
        ("mixture:rayleigh:0.1|mixture:gamma:4", "cannot contain a mixture"),
        ("mixture:rayleigh:-1|gamma:4", "below the minimum"),
    ],
)
def test_bad_specs_give_one_line_errors(spec, words):
    with pytest.raises(UsdenoiseError) as info:
        make_noise(spec)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_bad_constructor_values_and_inputs():
    for make in (
        lambda: Rayleigh(-0.5),
        lambda: Gamma(0.0),
        lambda: Rayleigh((0.5, 0.1)),
        lambda: Gaussian(float("nan")),
        lambda: Physics(0.1, axial_sigma=0),
        lambda: Physics(0.1, frequency=0.7),
        lambda: Physics(0.1, dynamic_range_db=-3),
    ):
        with pytest.raises(UsdenoiseError):
            make()
    model = Rayleigh(0.25)
    for bad in (torch.rand(1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.uint8), np.zeros((8, 8))):
        with pytest.raises(UsdenoiseError) as info:
            model(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(UsdenoiseError, match="add_speckle"):
        add_speckle(torch.rand(1, 1, 1, 8, 8), "rayleigh:0.1")
    with pytest.raises(UsdenoiseError, match="spec string"):
        make_noise(0.25)


def test_listed_by_usdenoise_list():
    from usdenoise.cli.listing import families

    rows = dict(families()["Noise models"])
    assert "rayleigh" in rows and "0.10, 0.25, 0.50, 0.75" in rows["rayleigh"]
    assert "physics" in rows and "lateral_sigma" in rows["physics"]


def test_noise_module_moves_like_any_module() -> None:
    """`.to()` must work (a method named `_apply` once shadowed nn.Module._apply)."""
    noise = make_noise("rayleigh:0.25").to(torch.float64).to("cpu")
    x = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    assert noise(x, generator=torch.Generator().manual_seed(0)).dtype == torch.float64
