"""Losses: zero for identical images, positive otherwise, differentiable, scale-aware."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.losses.parser import LOSSES, CombinedLoss, Loss, MSSSIMLoss, parse_loss
from usdenoise.metrics.image import ms_ssim, ssim
from usdenoise.models.segmenters import build_segmenter
from usdenoise.models.vgg import VGG16Features

LAYERS = ("relu1_2", "relu2_2", "relu3_3")


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory) -> dict[str, Path]:
    """A randomly initialised VGG16 (up to relu3_3, 1.7 M parameters) in both file formats,
    with torchvision's key names and an unrelated classifier key that must be ignored."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = VGG16Features(LAYERS).state_dict()
    state["classifier.6.bias"] = torch.zeros(10)
    folder = tmp_path_factory.mktemp("vgg")
    torch.save(state, folder / "vgg16.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "vgg16.safetensors"))
    return {"pth": folder / "vgg16.pth", "safetensors": folder / "vgg16.safetensors"}


def _images(size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth structure plus texture, in [0, 1]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)
    return (base + 0.05 * torch.rand(2, 1, size, size, generator=g)).clamp(0, 1)


def _noisy(x: torch.Tensor, level: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + level * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _segnet() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_segmenter("segnet", "fast", channels=[4, 8, 8])
    with torch.no_grad():  # features of the size a trained net has (fresh ones are tiny)
        net.encoder[0][0].weight.mul_(10)
    return net


def _make(name: str, vgg: dict[str, Path]) -> Loss:
    if name == "perceptual":
        return LOSSES[name](vgg_weights=vgg["pth"])
    if "segmenter" in LOSSES[name].requires:
        return LOSSES[name](segmenter=_segnet())
    return LOSSES[name]()


# losses of (pred, target) alone; `task` also takes the mask and is tested on its own below
PAIRWISE = [name for name in LOSSES if not LOSSES[name].extra_inputs]


def test_registry_has_the_task_losses() -> None:
    assert {"task", "taskperceptual"} <= set(LOSSES) and "taskperceptual" in PAIRWISE


@pytest.mark.parametrize("name", PAIRWISE)
def test_zero_for_identical_positive_otherwise(name: str, vgg_files) -> None:
    loss = _make(name, vgg_files)
    x = _images()
    assert abs(float(loss(x, x))) < 1e-6
    assert float(loss(_noisy(x, 0.1), x)) > 1e-4


@pytest.mark.parametrize("name", PAIRWISE)
def test_gradient_flows(name: str, vgg_files) -> None:
    loss = _make(name, vgg_files)
    x = _images()
    pred = _noisy(x, 0.1).requires_grad_(True)
    loss(pred, x).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", PAIRWISE)
def test_scale_aware(name: str, vgg_files) -> None:
    """Larger errors cost more; the value is a mean (batch and image size do not inflate it)."""
    loss = _make(name, vgg_files)
    x = _images(48)
    small, large = float(loss(_noisy(x, 0.03), x)), float(loss(_noisy(x, 0.2), x))
    assert 0 < small < large
    doubled = float(loss(torch.cat([_noisy(x, 0.03)] * 2), torch.cat([x] * 2)))
    assert doubled == pytest.approx(small, rel=1e-4)


def test_values_match_formulas() -> None:
    x = _images()
    y = _noisy(x, 0.1)
    assert float(LOSSES["l1"]()(y, x)) == pytest.approx(float((y - x).abs().mean()), rel=1e-6)
    assert float(LOSSES["l2"]()(y, x)) == pytest.approx(float(((y - x) ** 2).mean()), rel=1e-6)
    assert float(LOSSES["ssim"]()(y, x)) == pytest.approx(1 - float(ssim(y, x).mean()), abs=1e-6)
    assert float(LOSSES["msssim"]()(y, x)) == pytest.approx(
        1 - float(ms_ssim(y, x).mean()), abs=1e-6
    )


def test_msssim_matches_pytorch_msssim_from_161_px() -> None:
    import pytorch_msssim

    x = _images(176)[:1]
    y = _noisy(x, 0.1)
    ref = 1 - float(pytorch_msssim.ms_ssim(y, x, data_range=1.0))
    assert float(MSSSIMLoss()(y, x)) == pytest.approx(ref, abs=1e-4)  # float32 sums


def test_msssim_under_161_px_uses_fewer_scales() -> None:
    """Under 161 px pytorch-msssim refuses; we drop the coarsest scales and renormalise."""
    import pytorch_msssim

    x = _images(64)[:1]
    y = _noisy(x, 0.1)
    with pytest.raises(AssertionError):
        pytorch_msssim.ms_ssim(y, x, data_range=1.0)
    # 64 px: 3 scales fit (64 > 10 * 2**2); weights 0.0448, 0.2856, 0.3001 renormalised
    w = [0.0448, 0.2856, 0.3001]
    value = float(MSSSIMLoss()(y, x))
    expected = 1 - float(ms_ssim(y, x, weights=[v / sum(w) for v in w]))
    assert value == pytest.approx(expected, abs=1e-6)
    # a single scale at 16 px is plain SSIM
    x16, y16 = _images(16)[:1], _noisy(_images(16)[:1], 0.1)
    assert float(MSSSIMLoss()(y16, x16)) == pytest.approx(
        1 - max(float(ssim(y16, x16)), 0.0), abs=1e-6
    )


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_perceptual_loads_both_formats(fmt: str, vgg_files) -> None:
    loss = parse_loss("l1+perceptual", vgg_weights=vgg_files[fmt])
    ref = VGG16Features(LAYERS)
    ref.load_state_dict(torch.load(vgg_files["pth"], weights_only=True), strict=False)
    assert torch.equal(loss.terms[1].vgg.features[0].weight, ref.features[0].weight)
    # frozen: the VGG gets no gradient, and stays in eval mode when the loss is trained
    loss.train()
    assert not loss.terms[1].vgg.training
    assert not any(p.requires_grad for p in loss.parameters())


def test_perceptual_repeats_gray_with_imagenet_normalisation(vgg_files) -> None:
    loss = LOSSES["perceptual"](vgg_weights=vgg_files["pth"])
    x = torch.full((1, 1, 16, 16), 0.5)
    prepared = loss._prep(x)
    assert prepared.shape == (1, 3, 16, 16)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(prepared[0, :, 0, 0], expected)


@pytest.mark.parametrize("vgg", [None, "missing.pth"])
def test_perceptual_without_weights_says_how_to_get_them(vgg, tmp_path: Path) -> None:
    path = None if vgg is None else tmp_path / vgg
    with pytest.raises(UsdenoiseError, match="vgg16-397923af.pth") as e:
        parse_loss("l2+perceptual", vgg_weights=path)
    assert "--vgg-weights" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("l1", [(1.0, "l1")]),
        ("l1+msssim", [(1.0, "l1"), (1.0, "msssim")]),
        ("0.16*l1+0.84*msssim", [(0.16, "l1"), (0.84, "msssim")]),
        (" 2 * L2 + ssim ", [(2.0, "l2"), (1.0, "ssim")]),
        ("1e-1*l1", [(0.1, "l1")]),
    ],
)
def test_parse_loss(spec: str, expected: list) -> None:
    loss = parse_loss(spec)
    assert isinstance(loss, CombinedLoss)
    assert list(zip(loss.weights, loss.names, strict=True)) == expected


def test_combination_is_the_weighted_sum() -> None:
    x = _images()
    y = _noisy(x, 0.1)
    loss = parse_loss("0.16*l1+0.84*msssim")
    value = float(loss(y, x))
    l1, ms = float(LOSSES["l1"]()(y, x)), float(LOSSES["msssim"]()(y, x))
    assert value == pytest.approx(0.16 * l1 + 0.84 * ms, rel=1e-6)
    assert loss.last_terms == pytest.approx({"l1": l1, "msssim": ms}, rel=1e-6)
    assert loss.spec == "0.16*l1+0.84*msssim"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("l1+", "missing term after '\\+'"),
        ("+l1", "missing term at the start"),
        ("2*", "missing loss name after"),
        ("*l1", "missing weight before"),
        ("2*3*l1", "cannot parse term"),
        ("x*l1", "weight 'x' is not a number"),
        ("0*l1", "must be positive"),
        ("-1*l1", "must be positive|cannot parse|not a number"),
        ("inf*l1", "must be positive and finite"),
        ("l1+foo", "unknown loss 'foo'"),
        ("l1+l1", "l1 appears twice"),
        ("", "empty loss specification"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(UsdenoiseError, match=match) as e:
        parse_loss(spec)
    assert repr(spec) in str(e.value) and "\n" not in str(e.value)


def test_registry_allows_terms_with_resources_and_extra_inputs(monkeypatch) -> None:
    """The hook a later `task` loss uses: constructor resources and extra batch entries."""

    class MaskedL1(Loss):
        requires = ("segmenter",)
        extra_inputs = ("mask",)

        def __init__(self, *, segmenter) -> None:
            super().__init__()
            self.scale = segmenter

        def forward(self, pred, target, *, mask):
            return self.scale * ((pred - target).abs() * mask).mean()

    monkeypatch.setitem(LOSSES, "maskedl1", MaskedL1)
    loss = parse_loss("l1+0.5*maskedl1", segmenter=2.0)
    x = _images()
    y = _noisy(x, 0.1)
    mask = torch.ones_like(x)
    assert float(loss(y, x, mask=mask)) == pytest.approx(
        float((y - x).abs().mean()) * 2, rel=1e-6
    )
    with pytest.raises(UsdenoiseError, match="loss maskedl1: needs 'mask'"):
        loss(y, x)


def test_shape_mismatch() -> None:
    with pytest.raises(UsdenoiseError, match="same shape"):
        parse_loss("l1")(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))


# --- task-aware losses (Liu et al., IJCAI 2018) ----------------------------------------------


def _threshold_segmenter() -> torch.nn.Module:
    """Class 1 where the image is brighter than 0.5: segments `_mask_image` exactly."""
    net = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([-20.0, 20.0]).view(2, 1, 1, 1))
        net.bias.copy_(torch.tensor([10.0, -10.0]))
    return net


def _mask() -> torch.Tensor:
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[0, 8:20, 6:26] = 1
    mask[1, 12:30, 10:22] = 1
    return mask


def _unet() -> torch.nn.Module:
    pytest.importorskip("monai")
    torch.manual_seed(0)
    return build_segmenter("unet", "fast", channels=[4, 8])


def test_task_loss_is_lower_for_a_correctly_segmented_pred() -> None:
    pytest.importorskip("monai")
    loss = LOSSES["task"](segmenter=_threshold_segmenter())
    mask = _mask()
    good = (0.2 + 0.6 * mask.float())[:, None]
    corrupted = _noisy(good, 0.4)
    target = good.clone()
    assert float(loss(good, target, mask=mask)) < 0.5 * float(loss(corrupted, target, mask=mask))
    inverted = 1 - good
    assert float(loss(good, target, mask=mask)) < float(loss(inverted, target, mask=mask))


def test_task_loss_equals_monai_dice_ce_and_only_pred_gets_gradients() -> None:
    from monai.losses import DiceCELoss

    segmenter = _unet()
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    loss = parse_loss("task", segmenter=segmenter)
    x, mask = _images(), _mask()
    pred = _noisy(x, 0.1).requires_grad_(True)
    value = loss(pred, x, mask=mask)
    with torch.no_grad():
        expected = DiceCELoss(to_onehot_y=True, softmax=True)(segmenter(pred), mask[:, None])
    assert float(value.detach()) == pytest.approx(float(expected), abs=1e-6)
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in segmenter.parameters())
    # a training step of a denoiser through the loss leaves the segmenter as it was
    denoiser = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=0.1)
    loss.train()
    assert not segmenter.training
    step = parse_loss("l1+0.1*task", segmenter=segmenter)
    step.train()
    step(denoiser(_noisy(x, 0.1)), x, mask=mask).backward()
    assert denoiser.weight.grad is not None and denoiser.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not segmenter.training
    after = segmenter.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm buffers too


def test_task_loss_takes_a_mask_of_the_images_size() -> None:
    loss = parse_loss("task", segmenter=_unet())
    x = _images()
    with pytest.raises(UsdenoiseError, match="mask .* does not match"):
        loss(x, x, mask=_mask()[:, :16])
    with pytest.raises(UsdenoiseError, match="loss task: needs 'mask'"):
        loss(x, x)


def test_taskperceptual_through_a_monai_unet() -> None:
    loss = parse_loss("taskperceptual", segmenter=_unet())
    x = _images()
    assert float(loss(x, x)) == 0.0
    pred = _noisy(x, 0.1).requires_grad_(True)
    value = loss(pred, x)
    value.backward()
    assert float(value.detach()) > 0 and pred.grad.abs().sum() > 0
    loss.train()
    assert not loss.terms[0].segmenter.training


def test_parse_task_loss_with_and_without_a_segmenter(tmp_path: Path) -> None:
    loss = parse_loss("l1+0.1*task", segmenter=_unet())
    assert loss.names == ["l1", "task"] and loss.terms[1].num_classes == 2
    for spec in ("l1+task", "taskperceptual"):
        with pytest.raises(UsdenoiseError) as e:
            parse_loss(spec)
        assert str(e.value).endswith("needs a frozen segmenter: give --segmenter RUN")
        assert "\n" not in str(e.value)


def test_task_loss_loads_a_segmenter_checkpoint_and_refuses_a_denoiser(tmp_path: Path) -> None:
    from usdenoise.checkpoint import save_model
    from usdenoise.models import build_network

    net = _unet()
    save_model(tmp_path / "seg" / "model_best", net, arch="unet", arch_config=net.config,
               kind="segmenter")
    loss = parse_loss("l1+task", segmenter=tmp_path / "seg")
    loaded = loss.terms[1].segmenter
    assert torch.equal(loaded.net.model[0].conv.unit0.conv.weight,
                       net.net.model[0].conv.unit0.conv.weight)
    assert not any(p.requires_grad for p in loaded.parameters())
    denoiser = build_network("dncnn", "fast")
    save_model(tmp_path / "den" / "model", denoiser, arch="dncnn", arch_config=denoiser.config,
               kind="denoiser")
    with pytest.raises(UsdenoiseError, match="checkpoint is a denoiser, not a segmenter"):
        parse_loss("task", segmenter=tmp_path / "den")
