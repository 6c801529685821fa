"""The Python API: any registered method, any supported dtype and layout, the same back."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import usdenoise
from usdenoise.api import LAYOUTS, Despeckle, Despeckled, denoise, guess_layout
from usdenoise.checkpoint import save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.network import default_weights_path
from usdenoise.denoise.registry import DENOISERS, make_denoiser
from usdenoise.models import build_network

torch.set_num_threads(1)

H, W = 36, 44
DTYPES = ("uint8", "uint16", "float32", "float64")
SHAPES = {"HW": (H, W), "HWC": (H, W, 3), "CHW": (1, H, W), "BCHW": (2, 1, H, W),
          "BHWC": (2, H, W, 3)}
# every dtype and every layout once per method, numpy and torch alternating
PAIRS = [("uint8", "HW", "numpy"), ("uint16", "HWC", "torch"), ("float32", "CHW", "numpy"),
         ("float64", "BCHW", "torch"), ("uint8", "BHWC", "numpy"), ("float32", "HW", "torch")]
SLOW = {"bm3d"}  # seconds per call: one combination only


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = build_network("dncnn", "fast", channels=4, depth=4).eval()
    folder = tmp_path_factory.mktemp("run")
    return save_model(folder / "model", net, arch="dncnn", arch_config=net.config, meta={})


def speckled(shape: tuple[int, ...], dtype: str, kind: str, seed: int = 0):
    """Rayleigh speckle (non-constant) in the full range of `dtype`."""
    x = np.clip(np.random.default_rng(seed).rayleigh(0.3, size=shape), 0, 1)
    if dtype in ("uint8", "uint16"):
        x = np.round(x * np.iinfo(dtype).max).astype(dtype)
    else:
        x = x.astype(dtype)
    return torch.from_numpy(x) if kind == "torch" else x


def check_same(y, x) -> None:
    assert type(y) is type(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    a = y.numpy() if isinstance(y, torch.Tensor) else y
    assert float(np.ptp(a.astype(np.float64))) > 0, "constant output for a non-constant input"


def method_params(name: str, checkpoint: Path) -> dict:
    if name == "network":
        return {"checkpoint": str(checkpoint)}
    if name == "default" and not default_weights_path().is_file():
        pytest.skip("the default model is not shipped in this build")
    return {}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: "-".join(p))
@pytest.mark.parametrize("name", sorted(DENOISERS))
def test_every_method_keeps_type_dtype_and_layout(name: str, pair, checkpoint: Path) -> None:
    dtype, layout, kind = pair
    if name in SLOW and pair != PAIRS[0]:
        pytest.skip(f"{name} is slow: one combination")
    x = speckled(SHAPES[layout], dtype, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noise estimates on a tiny image
        y = usdenoise.denoise_image(x, name, layout=layout, **method_params(name, checkpoint))
    check_same(y, x)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["median", "default"])
def test_every_dtype_and_layout(name: str, dtype: str, layout: str, kind: str,
                                checkpoint: Path) -> None:
    x = speckled(SHAPES[layout], dtype, kind, seed=1)
    y = usdenoise.denoise_image(x, name, **method_params(name, checkpoint))  # layout guessed
    check_same(y, x)
    # the same numbers as the tensor interface on the [N, 1, H, W] gray planes
    planes = torch.as_tensor(np.asarray(x)).double()
    scale = 1.0 if dtype.startswith("float") else float(np.iinfo(dtype).max)
    view = {"HW": lambda t: t[None, None], "HWC": lambda t: t.movedim(-1, 0)[None],
            "CHW": lambda t: t[None], "BCHW": lambda t: t,
            "BHWC": lambda t: t.movedim(-1, 1)}[layout]
    first = (view(planes)[:, :1] / scale).float()
    expected = make_denoiser(name, **method_params(name, checkpoint)).denoise(first)
    got = view(torch.as_tensor(np.asarray(y)).double())[:, :1] / scale
    tol = 0.5 / scale + 1e-5 if scale > 1 else 1e-6
    assert (got - expected.double()).abs().max() <= tol


def test_alpha_kept_and_colour_channels_denoised_separately() -> None:
    rgba = speckled((H, W, 4), "uint8", "numpy")
    rgba[..., 3] = np.arange(W, dtype=np.uint8)[None, :]
    y = usdenoise.denoise_image(rgba, "median")
    assert np.array_equal(y[..., 3], rgba[..., 3])
    for c in range(3):
        one = usdenoise.denoise_image(np.ascontiguousarray(rgba[..., c]), "median")
        assert np.array_equal(y[..., c], one)


def test_input_is_not_modified_and_device_kept() -> None:
    x = speckled((1, H, W), "float32", "torch")
    before = x.clone()
    y = denoise(x, "median")  # usdenoise.api.denoise is the same function
    assert torch.equal(x, before) and y.device == x.device
    assert denoise is usdenoise.denoise_image


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.full((8, 8), 200.0, np.float32), "data_range=255"),
        (np.full((8, 8), -0.5), "outside \\[0, 1\\]"),
        (np.full((8, 8), np.nan, np.float32), "NaN/Inf"),
        (np.zeros((8, 8), np.int64), "unsupported dtype int64"),
        (np.zeros((8, 8), bool), "unsupported dtype bool"),
        (np.zeros((5, 8, 8), np.uint8), "pass layout="),
        (np.zeros((8,), np.uint8), "pass layout="),
        ([[0.5]], "expected a numpy array or torch tensor"),
    ],
)
def test_bad_images_are_one_line_errors(image, words: str) -> None:
    with pytest.raises(UsdenoiseError, match=words) as info:
        usdenoise.denoise_image(image, "median")
    assert "\n" not in str(info.value)


def test_data_range_scales_floats_explicitly() -> None:
    x8 = speckled((H, W), "uint8", "numpy")
    y = usdenoise.denoise_image(x8.astype(np.float32), "median", data_range=255)
    ref = usdenoise.denoise_image(x8, "median")
    assert y.dtype == np.float32 and np.abs(y - ref).max() <= 0.5 + 1e-3


def test_layout_guess_and_explicit_layout() -> None:
    assert guess_layout(np.zeros((3, 40, 3))) == "HWC"
    assert guess_layout(torch.zeros(3, 40, 3)) == "CHW"
    assert guess_layout(np.zeros((1, 40, 50))) == "CHW"
    with pytest.raises(UsdenoiseError, match="needs a 4-D image"):
        guess_layout(np.zeros((3, 4, 5)), "BCHW")
    with pytest.raises(UsdenoiseError, match="choose one of"):
        guess_layout(np.zeros((3, 4, 5)), "XYZ")


# ---------------------------------------------------------------------------- the tensor interface


@pytest.mark.parametrize(
    ("x", "words"),
    [
        ((torch.rand(1, 1, 16, 16) * 255).to(torch.uint8), "integer tensor.*divide by"),
        (torch.rand(1, 1, 16, 16) * 255, "outside \\[0, 1\\].*divide by 255"),
        (torch.full((1, 1, 16, 16), float("nan")), "NaN/Inf"),
    ],
)
def test_denoiser_refuses_unscaled_tensors(x: torch.Tensor, words: str) -> None:
    for name in ("median", "noisy"):
        with pytest.raises(UsdenoiseError, match=words):
            make_denoiser(name).denoise(x)


def test_denoiser_is_a_module_with_strength_and_tiling(checkpoint: Path) -> None:
    den = usdenoise.load_model(checkpoint, strength=0.5, tile=16, overlap=4)
    assert isinstance(den, torch.nn.Module) and isinstance(den, Denoiser)
    assert any(True for _ in den.parameters())  # the network's weights are submodules
    x = torch.rand(1, 1, 40, 37, generator=torch.Generator().manual_seed(0))
    assert torch.equal(den(x), den.denoise(x))
    whole = usdenoise.load_model(checkpoint.parent)  # the run folder; tile: automatic
    with torch.no_grad():
        full = whole.net(x)  # the raw network output (the denoiser clamps after blending)
    torch.testing.assert_close(den(x), (0.5 * full + 0.5 * x).clamp(0, 1), atol=1e-5, rtol=0)
    seq = torch.nn.Sequential(make_denoiser("median"), make_denoiser("gaussian", sigma=1))
    assert seq(x).shape == x.shape


def test_add_speckle_and_evaluate() -> None:
    clean = speckled((H, W), "uint8", "numpy")
    noisy = usdenoise.add_speckle(clean, "rayleigh:0.5", seed=0)
    assert noisy.dtype == np.uint8 and noisy.shape == clean.shape
    assert np.array_equal(noisy, usdenoise.add_speckle(clean, "rayleigh:0.5", seed=0))
    scores = usdenoise.evaluate(noisy, clean)
    assert set(scores) == {"psnr", "ssim"} and 0 < scores["ssim"] < 1
    assert usdenoise.evaluate(clean, clean, metrics=["psnr"])["psnr"] == float("inf")
    with pytest.raises(UsdenoiseError, match="unknown metric 'enl'"):
        usdenoise.evaluate(noisy, clean, metrics=["enl"])
    with pytest.raises(UsdenoiseError, match="differ in shape"):
        usdenoise.evaluate(noisy, clean[:-1])


def test_top_level_names_and_subpackage() -> None:
    import usdenoise.denoise.files as files_module  # the subpackage keeps its import paths

    assert files_module.__name__ == "usdenoise.denoise.files"
    for name in usdenoise.API:
        assert callable(getattr(usdenoise, name))
    with pytest.raises(AttributeError):
        _ = usdenoise.no_such_name  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- MONAI


def test_despeckle_transforms_without_monai() -> None:
    x = speckled((1, H, W), "float32", "torch")
    y = Despeckle("median")(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    data = {"image": x, "label": torch.zeros(1, H, W)}
    out = Despeckled(keys="image", method="median")(data)
    assert torch.equal(out["image"], y) and out["label"] is data["label"]
    with pytest.raises(UsdenoiseError, match="key 'mask' not in the data"):
        Despeckled(keys=["mask"], method="median")(data)
    assert Despeckled(keys="mask", method="median", allow_missing_keys=True)(data).keys() == \
        data.keys()


def test_despeckle_inside_monai_compose() -> None:
    monai = pytest.importorskip("monai")
    from monai.data import MetaTensor
    from monai.transforms import Compose, EnsureChannelFirstd, ScaleIntensityd

    image = speckled((H, W), "uint8", "numpy").astype(np.float32)  # LoadImage-like: 0..255
    meta = MetaTensor(torch.from_numpy(image), meta={"filename_or_obj": "scan.png"})
    pipeline = Compose([
        EnsureChannelFirstd(keys="image", channel_dim="no_channel"),
        ScaleIntensityd(keys="image"),
        Despeckled(keys="image", method="median"),
    ])
    out = pipeline({"image": meta})
    assert isinstance(out["image"], MetaTensor)
    assert out["image"].meta["filename_or_obj"] == "scan.png"
    assert out["image"].shape == (1, H, W) and float(out["image"].std()) > 0
    array = Compose([monai.transforms.EnsureChannelFirst(channel_dim="no_channel"),
                     Despeckle("median", data_range=255)])(meta)
    assert array.shape == (1, H, W) and float(array.max()) > 1  # back in 0..255
