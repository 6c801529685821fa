"""Self-supervised training (r2r, nb2nb): draws, losses, resume, errors, CLI, checkpoints.

Tiny: 32-64 px phantoms, 2 batches per epoch, a 4-channel DiConvAE; seconds each.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from safetensors.torch import load_file

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise import make_denoiser
from usdenoise.io import write_image
from usdenoise.noise import make_noise
from usdenoise.noise.estimate import aggregate, estimate_speckle
from usdenoise.noise.level import recorrupt, speckle_correlation_kernel
from usdenoise.training.config import SELF_SUPERVISED, TrainConfig, config_from_dict
from usdenoise.training.loop import fit
from usdenoise.training.state import STATE_FILE
from usdenoise.training.tasks import TASKS
from usdenoise.training.tasks.selfsupervised import (
    NEIGHBOUR_PAIRS,
    SpeckleStats,
    cell_lattices,
    estimate_patch,
    images_needed,
    measure_speckle,
    neighbour_subsample,
    speckle_noise,
)

torch.set_num_threads(1)

TINY = dict(data="phantom:12", image_size=64, crop=32, batch_size=4, epochs=1, limit=2,
            model={"channels": [4, 4, 4, 4]}, device="cpu", progress=False,
            noise="physics:0.1", ss_stride=2)


def _config(out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **changes})


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def _scans(folder: Path, count: int) -> Path:
    """`count` noisy phantoms of mixed sizes and bit depths (8-bit PNG, 16-bit TIFF)."""
    from usdenoise.data import make_phantom

    folder.mkdir(parents=True)
    noise = make_noise("physics:0.1")
    for i in range(count):
        size = (48, 64) if i % 2 else (64, 40)
        clean = make_phantom(size, seed=i)["image"].float()
        noisy = noise(clean[None], generator=torch.Generator().manual_seed(i))[0]
        if i % 3 == 2:
            write_image(folder / f"scan{i}.tif", noisy, bit_depth=16)
        else:
            write_image(folder / f"scan{i}.png", noisy)
    return folder


# --- the draws ------------------------------------------------------------------------------


def test_r2r_pair_has_the_stated_mean_and_covariance() -> None:
    stats = SpeckleStats(0.1, 1.5, 2.5)
    y = torch.rand(1, 1, 64, 64).expand(400, 1, 64, 64)
    n = speckle_noise(tuple(y.shape), stats, generator=torch.Generator().manual_seed(1))
    alpha = 0.5
    inp, tgt = recorrupt(y, n, alpha)
    a, b = inp - y, tgt - y  # the added noises: α·n and −n/α
    assert float(a.mean()) == pytest.approx(0.0, abs=2e-3)
    assert float(b.mean()) == pytest.approx(0.0, abs=8e-3)
    assert float(a.std()) == pytest.approx(alpha * 0.1, rel=0.02)
    assert float(b.std()) == pytest.approx(0.1 / alpha, rel=0.02)
    assert float((a * b).mean()) == pytest.approx(-0.01, rel=0.03)  # cov = −Σ: cancels in sum
    kernel = speckle_correlation_kernel((64, 64), 1.5, 2.5)
    var = float(n.square().mean())
    for dz, dx in ((1, 0), (0, 1), (2, 0), (0, 3), (1, 1)):
        measured = float((n[..., dz:, dx:] * n[..., : 64 - dz, : 64 - dx]).mean()) / var
        assert measured == pytest.approx(float(kernel[dz, dx]), abs=0.02), (dz, dx)


def test_nb2nb_subsampler_picks_neighbouring_cells_at_the_stride() -> None:
    stride, h, w = 3, 24, 30
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    x = torch.stack([rows, cols])[None]  # channel 0: row, channel 1: column of each pixel
    lattices = cell_lattices(x, stride)
    assert lattices.shape == (stride * stride, 2, h // stride, w // stride)
    choice = torch.randint(0, 8, (stride * stride, h // (2 * stride), w // (2 * stride)),
                           generator=torch.Generator().manual_seed(0))
    g1, g2 = neighbour_subsample(x, choice, stride)
    assert g1.shape == (stride * stride, 2, h // (2 * stride), w // (2 * stride))
    dr, dc = (g2[:, 0] - g1[:, 0]).abs(), (g2[:, 1] - g1[:, 1]).abs()
    # edge neighbours exactly `stride` apart, same in-cell offset, in the same 2x2 block
    assert bool((((dr == stride) & (dc == 0)) | ((dr == 0) & (dc == stride))).all())
    assert bool(((g1[:, 0] % stride) == (g2[:, 0] % stride)).all())
    assert bool(((g1[:, 0] // (2 * stride)) == (g2[:, 0] // (2 * stride))).all())
    assert bool(((g1[:, 1] // (2 * stride)) == (g2[:, 1] // (2 * stride))).all())
    # every phase of the lattice is used once
    offsets = {(int(a), int(b)) for a, b in zip(g1[:, 0, 0, 0] % stride, g1[:, 1, 0, 0] % stride,
                                                 strict=True)}
    assert len(offsets) == stride * stride
    assert len(NEIGHBOUR_PAIRS) == 8


def test_nb2nb_validation_loss_ranks_a_denoiser_above_the_identity() -> None:
    """The best epoch is picked by the validation loss. nb2nb's whole loss ranks the identity
    first (its regulariser is 0 there and γσ² for a perfect denoiser), so a run kept its
    epoch-4 network (21.95 dB against B(x) on the phantom check; its last epoch: 24.32).
    The validation loss is the reconstruction term, which falls as the network denoises."""
    task = TASKS["selfsupervised"](TrainConfig(data="phantom:12", self_supervised="nb2nb",
                                               ss_stride=2, noise="none", batch_size=2))
    g = torch.Generator().manual_seed(0)
    rows = torch.linspace(0.2, 0.8, 64)[:, None].expand(64, 64)
    clean = (rows + 0.1 * torch.linspace(0, 1, 64)[None, :]).expand(8, 1, 64, 64)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    choice = torch.randint(0, len(NEIGHBOUR_PAIRS), (8 * 4, 16, 16), generator=g)
    target = {"noisy": noisy, "choice": choice}
    kernel = torch.ones(1, 1, 5, 5) / 25  # a box blur: on this smooth ramp, a good denoiser

    def blur(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2,) * 4, "replicate"),
                                          kernel)

    def identity(x: torch.Tensor) -> torch.Tensor:
        return x

    assert float(task.loss_fn(blur, noisy, target)) > float(task.loss_fn(identity, noisy,
                                                                            target))
    assert float(task.validation_loss_fn(blur, noisy, target)) < 0.8 * float(
        task.validation_loss_fn(identity, noisy, target))
    r2r = TASKS["selfsupervised"](TrainConfig(data="phantom:12", self_supervised="r2r",
                                              noise="none", batch_size=2))
    draw = {"noisy": noisy, "noise": 0.1 * torch.randn(clean.shape, generator=g)}
    assert torch.equal(r2r.validation_loss_fn(blur, noisy, draw), r2r.loss_fn(blur, noisy, draw))


def test_r2r_statistics_are_the_inspect_estimate() -> None:
    """The r2r statistics are `noise.estimate`'s (what `usdenoise inspect` reports): the
    median over the images of the level and the fitted physics PSF widths. Phantoms with
    physics speckle of PSF 1.5 x 2.5 px, sigma 0.1: measured within 15 % / 0.5 px."""
    from usdenoise.data import make_phantom

    noise = make_noise("physics:0.1")
    images = [noise(make_phantom(128, seed=i)["image"].float()[None],
                    generator=torch.Generator().manual_seed(i))[0] for i in range(6)]
    stats, found = measure_speckle(images)
    expected = aggregate(estimate_speckle(x, patch=estimate_patch(x.shape)) for x in images)
    assert stats == SpeckleStats(expected.sigma, expected.axial_sigma, expected.lateral_sigma)
    assert found.measured >= 4
    assert stats.sigma == pytest.approx(0.1, rel=0.15)
    assert stats.axial_sigma == pytest.approx(1.5, abs=0.5)
    assert stats.lateral_sigma == pytest.approx(2.5, abs=0.5)
    assert estimate_patch((1, 540, 800)) == 32  # HC18 at its own size: inspect's tile


def test_r2r_on_images_without_homogeneous_speckle_is_one_line(tmp_path: Path) -> None:
    """Flat, noise-free scans: nothing to measure; one line naming the ss_* options."""
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(5):
        write_image(folder / f"flat{i}.png", torch.full((1, 64, 64), 0.2 + 0.1 * i))
    with pytest.raises(UsdenoiseError) as info:
        fit(TrainConfig(data=f"folder:{folder}", crop=32, batch_size=2, epochs=1, limit=1,
                        model={"channels": [4, 4, 4, 4]}, device="cpu", progress=False,
                        self_supervised="r2r", out=str(tmp_path / "run")))
    message = str(info.value)
    assert "\n" not in message and "no homogeneous speckle" in message
    assert "ss_level" in message and not (tmp_path / "run" / "model.safetensors").exists()


# --- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", SELF_SUPERVISED)
def test_each_method_trains_resumes_and_loads(tmp_path: Path, method: str) -> None:
    run = tmp_path / "run"
    best = fit(_config(run, self_supervised=method, epochs=1, schedule="none"))
    fit(_config(run, self_supervised=method, epochs=2, schedule="none", resume=str(run)))
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("train_loss", "val_loss",
                                                                   "val_psnr", "val_ssim"))
    # 2 straight epochs give the same weights as 1 + resume
    straight = tmp_path / "straight"
    fit(_config(straight, self_supervised=method, epochs=2, schedule="none"))
    a = load_file(run / "model.safetensors")
    b = load_file(straight / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (run / STATE_FILE).exists()
    denoiser = make_denoiser("network", checkpoint=str(best), device="cpu")
    out = denoiser.denoise(torch.rand(1, 1, 40, 48))
    assert out.shape == (1, 1, 40, 48) and bool(torch.isfinite(out).all())


def test_r2r_loss_decreases_on_a_toy_case(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_config(run, self_supervised="r2r", epochs=6, limit=3, lr=3e-3, schedule="none",
                ss_level=0.1, ss_axial=1.5, ss_lateral=2.5))
    rows = _rows(run)
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert float(rows[-1]["val_psnr"]) > float(rows[0]["val_psnr"])


def test_folder_of_mixed_sizes_and_bit_depths(tmp_path: Path) -> None:
    scans = _scans(tmp_path / "scans", 8)
    run = tmp_path / "run"
    best = fit(TrainConfig(data=f"folder:{scans}", crop=32, batch_size=2, epochs=1, limit=2,
                           model={"channels": [4, 4, 4, 4]}, device="cpu", progress=False,
                           self_supervised="r2r", out=str(run)))
    row = _rows(run)[0]
    assert "val_psnr" not in row and math.isfinite(float(row["val_loss"]))
    import json

    meta = json.loads(best.with_suffix(".json").read_text())
    stats = meta["meta"]["self_supervised"]["speckle"]
    assert meta["kind"] == "denoiser" and 0.03 < stats["sigma"] < 0.3
    measured = meta["meta"]["self_supervised"]["speckle_estimate"]
    assert measured["measured"] >= 1 and measured["physics"]["sigma"] == stats["sigma"]


# --- errors ---------------------------------------------------------------------------------


def test_unknown_method_is_one_line_listing_the_methods(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError) as info:
        _config(tmp_path / "run", self_supervised="n2v")
    message = str(info.value)
    assert "\n" not in message and "'n2v'" in message
    assert all(m in message for m in SELF_SUPERVISED)


def test_config_defaults_and_conflicts(tmp_path: Path) -> None:
    config = TrainConfig(data="folder:x", self_supervised="r2r")
    assert (config.task, config.loss, config.noise) == ("selfsupervised", "l2", "none")
    again = config_from_dict(config.to_dict())
    assert again == config
    assert TASKS["selfsupervised"].name == "selfsupervised"
    for bad in (dict(loss="l1"), dict(task="segment"), dict(ss_alpha=0.0),
                dict(self_supervised="nb2nb", crop=32, ss_stride=4)):
        with pytest.raises(UsdenoiseError) as info:
            TrainConfig(**{"self_supervised": "r2r", **bad})
        assert "\n" not in str(info.value)
    with pytest.raises(UsdenoiseError, match="needs a self_supervised method"):
        TrainConfig(task="selfsupervised")


def test_too_small_folder_says_how_many_images_are_needed(tmp_path: Path) -> None:
    scans = _scans(tmp_path / "scans", 3)
    with pytest.raises(UsdenoiseError) as info:
        fit(TrainConfig(data=f"folder:{scans}", crop=32, batch_size=1, epochs=1,
                        device="cpu", progress=False, self_supervised="nb2nb", ss_stride=2,
                        out=str(tmp_path / "run")))
    message = str(info.value)
    assert "\n" not in message and "3 images" in message and "at least 4" in message
    # the default --batch-size 16: a 70 % train split of 16 needs 22 images
    with pytest.raises(UsdenoiseError, match=r"8 images; .* at least 22 .*--batch-size 16"):
        TASKS["selfsupervised"](TrainConfig(data=f"folder:{_scans(tmp_path / 'more', 8)}",
                                            self_supervised="r2r", batch_size=16))
    assert [images_needed(b) for b in (1, 4, 16)] == [4, 6, 22]


# --- command line ---------------------------------------------------------------------------


def test_cli_self_supervised_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    scans = _scans(tmp_path / "scans", 8)
    run = tmp_path / "run"
    options = tmp_path / "ss.toml"
    options.write_text("ss_stride = 2\nss_gamma = 1.0\n")  # method options: a config file
    code, _, err = run_cli(capsys, "train", f"folder:{scans}", "--self-supervised", "nb2nb",
                           "--config", options, "--crop", "32", "--batch-size", "2",
                           "--arch-param", "channels=4,4,4,4", "--epochs", "1", "--limit", "2",
                           "--device", "cpu", "--out", run)
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", run, "--epochs", "2")
    assert code == 0, err
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]
    # nb2nb learnt on sub-lattices 2 px apart: its checkpoint says to run it on them
    sidecar = json.loads((run / "model_best.json").read_text())
    assert sidecar["meta"]["inference"] == {"lattice": 2}
    out_dir = tmp_path / "denoised"
    code, _, err = run_cli(capsys, "denoise", next(scans.glob("*.png")), "--model", run,
                           "--out", out_dir)
    assert code == 0, err
    assert any(out_dir.iterdir())
    code, _, err = run_cli(capsys, "train", f"folder:{scans}", "--self-supervised", "bogus",
                           "--out", tmp_path / "bad")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "r2r" in err and "nb2nb" in err
    assert np.isfinite(float(_rows(run)[-1]["val_loss"]))


def test_nb2nb_warns_when_the_sub_images_are_smaller_than_what_the_network_sees() -> None:
    import warnings as w

    from usdenoise.training.tasks.selfsupervised import SelfSupervisedTask

    small = TrainConfig(data="phantom:30", self_supervised="nb2nb", arch="diconvae",
                        preset="fast", crop=96, ss_stride=4)
    with pytest.warns(UserWarning, match=r"12-px sub-images, but the diconvae network sees "
                                         r"61 px .* --crop 244 or more"):
        SelfSupervisedTask(small).build_model()
    with w.catch_warnings():
        w.simplefilter("error")
        for ok in (TrainConfig(data="phantom:30", self_supervised="nb2nb", arch="dncnn",
                               preset="fast", crop=96, ss_stride=4),
                   TrainConfig(data="phantom:30", self_supervised="nb2nb", arch="diconvae",
                               preset="fast", crop=256, ss_stride=4),
                   TrainConfig(data="phantom:30", self_supervised="r2r", arch="diconvae",
                               preset="fast", crop=96)):
            SelfSupervisedTask(ok).build_model()
