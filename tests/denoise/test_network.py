"""The `network` and `default` denoisers behind the common interface."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from usdenoise.checkpoint import save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise import network as nd
from usdenoise.denoise.registry import DENOISERS, NETWORKS, make_denoiser
from usdenoise.models import build_network
from usdenoise.models.space_to_depth import lattice_apply


@pytest.fixture
def tiny_ckpt(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    net = build_network("dncnn", "fast", channels=4, depth=4).eval()
    path = save_model(tmp_path / "run" / "model", net, arch="dncnn", arch_config=net.config,
                      meta={})
    return path, net


@pytest.fixture
def level_ckpt(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.Tensor]:
    """A small level-conditioned U-Net checkpoint (trained range 0-0.3) and a test image with
    a flat half and a bright half."""
    torch.manual_seed(0)
    net = build_network("unet", channels=4, levels=2, level_input=True).eval()
    ckpt = save_model(tmp_path / "m", net, arch="unet", arch_config=net.config,
                      meta={"level": {"scale": 10.0, "range": [0.0, 0.3]}})
    x = torch.rand(1, 1, 48, 64) * 0.2 + 0.3
    x[..., 32:] += 0.4
    return ckpt, net, x


def test_registered() -> None:
    assert NETWORKS["network"] is nd.NetworkDenoiser
    assert NETWORKS["default"] is nd.DefaultDenoiser
    assert DENOISERS["network"] is nd.NetworkDenoiser and DENOISERS["default"] is nd.DefaultDenoiser


def test_network_denoiser_matches_the_network(tiny_ckpt) -> None:
    path, net = tiny_ckpt
    den = make_denoiser("network", checkpoint=str(path), device="cpu")
    x = torch.rand(2, 1, 23, 30)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    assert torch.allclose(den.denoise(x), expected, atol=1e-6)


def test_tiles_from_command_line_strings(tiny_ckpt) -> None:
    path, net = tiny_ckpt
    den = make_denoiser("network", checkpoint=str(path.parent), tile="16", overlap="4")
    assert den.tile == 16 and den.overlap == 4
    x = torch.rand(1, 1, 41, 37)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    assert torch.allclose(den.denoise(x), expected, atol=1e-5)


def test_strength_blends_input_and_output(tiny_ckpt) -> None:
    path, net = tiny_ckpt
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        full = net(x)
    none = make_denoiser("network", checkpoint=str(path), strength=0).denoise(x)
    half = make_denoiser("network", checkpoint=str(path), strength="0.5").denoise(x)
    assert torch.allclose(none, x)
    assert torch.allclose(half, (0.5 * full + 0.5 * x).clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "parameter checkpoint is required"),
        ({"strength": 1.5}, "strength: 1.5 is above the maximum"),
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"tile": 32, "overlap": 32}, "overlap 32 must be smaller than tile 32"),
        ({"tile": 8}, "tile: 8 is below the minimum"),
    ],
)
def test_bad_parameters(tiny_ckpt, params: dict, match: str) -> None:
    path, _ = tiny_ckpt
    if params:
        params = {"checkpoint": str(path), **params}
    with pytest.raises(UsdenoiseError, match=match):
        make_denoiser("network", **params)


def test_bfloat16_runs_the_network_in_bfloat16_and_returns_float32_near_it(tiny_ckpt,
                                                                           monkeypatch) -> None:
    path, net = tiny_ckpt
    monkeypatch.setattr(nd, "native_bfloat16", lambda device: True)  # no warning on any CPU
    x = torch.rand(1, 1, 32, 40)
    full = make_denoiser("network", checkpoint=str(path), device="cpu").denoise(x)
    den = make_denoiser("network", checkpoint=str(path), device="cpu", precision="bfloat16")
    seen: list[torch.dtype] = []
    conv = next(m for m in den.net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    half = den.denoise(x)
    assert seen == [torch.bfloat16]  # the convolutions really ran in bfloat16
    assert half.dtype == torch.float32 and half.shape == x.shape
    # bfloat16 keeps 8 significant bits: within 2^-8 of values below 1, not equal
    assert 0 < float((half - full).abs().max()) < 2 ** -6
    assert float((half - full).abs().mean()) < 2 ** -9
    # tiles too: their cross-faded sum is accumulated in float32
    tiled = dict(checkpoint=str(path), device="cpu", tile=16, overlap=4)
    full = make_denoiser("network", **tiled).denoise(x)
    half = make_denoiser("network", **tiled, precision="bfloat16").denoise(x)
    assert 0 < float((half - full).abs().max()) < 2 ** -6


def test_bfloat16_without_cpu_support_warns_that_it_is_emulated(tiny_ckpt, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not nd.native_bfloat16(torch.device("cpu"))
    assert nd.native_bfloat16(torch.device("cuda"))
    with pytest.warns(UserWarning, match="no bfloat16 instructions.*slower than float32"):
        make_denoiser("network", checkpoint=str(tiny_ckpt[0]), device="cpu",
                      precision="bfloat16")
    with pytest.raises(UsdenoiseError, match="precision: 'half' is not one of"):
        make_denoiser("network", checkpoint=str(tiny_ckpt[0]), precision="half")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match=r"nope\.safetensors: checkpoint file not found"):
        make_denoiser("network", checkpoint=str(tmp_path / "nope.safetensors"))


def test_segmenter_checkpoint_refused(tiny_ckpt) -> None:
    import json

    path, _ = tiny_ckpt
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    data["kind"] = "segmenter"
    side.write_text(json.dumps(data))
    with pytest.raises(UsdenoiseError, match="is a segmenter, not a denoiser"):
        make_denoiser("network", checkpoint=str(path))


def test_cuda_requested_without_gpu(tiny_ckpt) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UsdenoiseError, match="no CUDA GPU"):
        make_denoiser("network", checkpoint=str(tiny_ckpt[0]), device="cuda")


def test_default_model_missing_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(nd, "default_weights_path", lambda: tmp_path / "default.safetensors")
    with pytest.raises(UsdenoiseError, match="default model is not shipped in this build") as e:
        make_denoiser("default")
    assert "usdenoise train" in str(e.value) and "\n" not in str(e.value)


def test_default_model_loads_when_present(tiny_ckpt, monkeypatch) -> None:
    path, net = tiny_ckpt
    monkeypatch.setattr(nd, "default_weights_path", lambda: path)
    den = make_denoiser("default", tile=64)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(den.denoise(x), net(x).clamp(0, 1), atol=1e-6)


def test_default_weights_path_is_inside_the_package() -> None:
    p = nd.default_weights_path()
    assert p.name == "default.safetensors" and p.parent.name == "weights"


def test_level_outside_the_trained_range_is_clamped_with_a_warning_on_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`denoise --model RUN --param level=5` with a network trained on levels 0.01-0.2: the
    level is clamped to 0.2 and stderr says so (the command hides only its 'skipped'
    warnings, which it lists itself); the output is the one at level 0.2."""
    from cli_helpers import run_cli

    from usdenoise.io import read_image, write_image

    net = build_network("unet", channels=4, levels=2, level_input=True)
    ckpt = save_model(tmp_path / "m", net, arch="unet", arch_config=net.config,
                      meta={"level": {"scale": 10.0, "range": [0.01, 0.2]}})
    write_image(tmp_path / "in" / "scan.png", torch.rand(1, 48, 48) * 0.5 + 0.25)
    outputs = {}
    for level in ("5", "0.2"):
        out = tmp_path / f"out{level}"
        with warnings.catch_warnings(record=True) as caught:  # pytest takes them from stderr
            warnings.simplefilter("always")
            code, _, err = run_cli(capsys, "denoise", tmp_path / "in" / "scan.png", "--model",
                                   ckpt, "--param", f"level={level}", "--out", out)
        assert code == 0, err
        shown = [str(w.message) for w in caught if "outside the trained range" in str(w.message)]
        assert shown == (["network: speckle level 5 is outside the trained range [0.01, 0.2]; "
                          "clamped"] if level == "5" else [])
        outputs[level] = read_image(out / "scan.png")
    assert torch.equal(outputs["5"], outputs["0.2"])


def test_a_sub_lattice_network_runs_on_the_sub_lattices(tmp_path: Path) -> None:
    """nb2nb checkpoints record meta.inference.lattice; the denoiser runs them that way."""
    torch.manual_seed(0)
    net = build_network("dncnn", "fast", channels=4, depth=4).eval()
    path = save_model(tmp_path / "nb", net, arch="dncnn", arch_config=net.config,
                      meta={"inference": {"lattice": 4}})
    x = torch.rand(1, 1, 40, 36)
    with torch.no_grad():
        expected = lattice_apply(net, x, 4)
        plain = net(x)
    got = make_denoiser("network", checkpoint=str(path)).denoise(x)
    assert torch.allclose(got, expected.clamp(0, 1), atol=1e-6)
    assert not torch.allclose(got, plain.clamp(0, 1), atol=1e-3)
    bad = save_model(tmp_path / "bad", net, arch="dncnn", arch_config=net.config,
                     meta={"inference": {"lattice": "4; rm"}})
    with pytest.raises(UsdenoiseError, match="meta.inference.lattice must be an integer"):
        make_denoiser("network", checkpoint=str(bad)).denoise(x)


def test_smooth_needs_a_level_conditioned_network(tiny_ckpt) -> None:
    path, _ = tiny_ckpt
    with pytest.raises(UsdenoiseError, match="smooth=2 needs a level-conditioned network"):
        make_denoiser("network", checkpoint=str(path), smooth=2)
    with pytest.raises(UsdenoiseError, match="smooth"):
        make_denoiser("network", checkpoint=str(path), smooth=-1)


def test_smooth_feeds_the_varying_map_and_zero_keeps_the_constant_one(level_ckpt) -> None:
    from usdenoise.noise.adaptive_level import adaptive_level_map
    from usdenoise.noise.level import estimate_level

    ckpt, net, x = level_ckpt
    for smooth in (0.0, 3.0):
        got = make_denoiser("network", checkpoint=str(ckpt), smooth=smooth).denoise(x)
        level_map = adaptive_level_map(estimate_level(x), x, smooth, low=0.0, high=0.3)
        with torch.no_grad():
            expected = net(torch.cat([x, level_map], dim=1))
        assert torch.allclose(got, expected, atol=1e-5), smooth


def test_passes_repeat_the_network_in_flat_tissue_with_the_first_level(level_ckpt) -> None:
    """passes=3: the network runs on its own output twice more with the level measured on the
    input, and the result is that third output where the tissue is flat and the first one
    at structures, blended by `flatness` of the first output (σ PASSES_FLATNESS_SIGMA)."""
    from usdenoise.noise.adaptive_level import adaptive_level_map, flatness
    from usdenoise.noise.level import estimate_level

    ckpt, net, x = level_ckpt
    level = estimate_level(x)

    def once(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(torch.cat([t, adaptive_level_map(level, t, 3.0, low=0.0, high=0.3)], 1))

    first = once(x)
    later = once(once(first.clamp(0, 1)).clamp(0, 1))
    weight = flatness(first, sigma=nd.PASSES_FLATNESS_SIGMA)
    expected = (weight * later + (1 - weight) * first).clamp(0, 1)
    got = make_denoiser("network", checkpoint=str(ckpt), smooth=3, passes=3).denoise(x)
    assert torch.allclose(got, expected, atol=1e-5)
    one = make_denoiser("network", checkpoint=str(ckpt), smooth=3, passes=1).denoise(x)
    assert torch.allclose(one, first.clamp(0, 1), atol=1e-5)


def test_passes_work_without_a_level_input_and_are_bounded(tiny_ckpt) -> None:
    path, net = tiny_ckpt
    x = torch.rand(1, 1, 40, 40)
    got = make_denoiser("network", checkpoint=str(path), passes=2).denoise(x)
    with torch.no_grad():
        first = net(x)
        later = net(first.clamp(0, 1))
    from usdenoise.noise.adaptive_level import flatness

    weight = flatness(first, sigma=nd.PASSES_FLATNESS_SIGMA)
    assert torch.allclose(got, (weight * later + (1 - weight) * first).clamp(0, 1), atol=1e-5)
    for bad in (0, nd.MAX_PASSES + 1, "two"):
        with pytest.raises(UsdenoiseError, match="passes"):
            make_denoiser("network", checkpoint=str(path), passes=bad)


def _test_scans(hc18_root: Path, count: int, **denoisers: dict) -> list[tuple[dict, list, dict]]:
    """The first `count` HC18 test-split scans at native size: per scan the sample, its
    homogeneous patches and `{name: output}` of `make_denoiser("default", **params)` for
    each named parameter set."""
    from usdenoise.data import load_dataset
    from usdenoise.data.splits import split_dataset
    from usdenoise.metrics import noreference as nr

    data = load_dataset(f"hc18:{hc18_root}", size=None)
    made = {name: make_denoiser("default", **params) for name, params in denoisers.items()}
    scans = []
    for index in list(split_dataset(data, seed=0)["test"])[:count]:
        sample = data[index]
        x = sample["image"][None]
        sample["x"] = x
        scans.append((sample, nr.find_homogeneous_patches(x),
                      {name: d.denoise(x) for name, d in made.items()}))
    return scans


@pytest.mark.skipif(not nd.default_weights_path().is_file(), reason="default model not shipped")
@pytest.mark.parametrize(("count", "weaker", "stronger"), [
    (3, {}, {"smooth": 3}),
    (2, {"smooth": 3}, {"smooth": 3, "passes": 3}),
], ids=["smooth", "passes"])
def test_stronger_settings_remove_more_speckle_in_tissue_of_real_scans(
        hc18_root, count: int, weaker: dict, stronger: dict) -> None:
    """HC18 test-split scans at native size: smooth=3 (against smooth=0), and passes=3
    beside smooth=3 (against smooth=3 alone), lower the speckle index in the homogeneous
    patches by at least 5 points more on each scan, and keep on average >= 0.9 of the
    skull-edge contrast (one scan alone may lose more; benchmarks/real_scans.py measures
    the whole split)."""
    from usdenoise.metrics import noreference as nr

    edges = []
    for sample, patches, outputs in _test_scans(hc18_root, count, weaker=weaker,
                                                stronger=stronger):
        x = sample["x"]
        before = nr.speckle_index(x, patches)
        change = {k: nr.speckle_index(y, patches) / before - 1 for k, y in outputs.items()}
        assert change["stronger"] < change["weaker"] - 0.05, change
        edges.append(nr.edge_ratio(outputs["stronger"], x, sample["mask"].squeeze()))
        y = outputs["stronger"]
        assert y.dtype == x.dtype and y.shape == x.shape
    assert sum(edges) / len(edges) >= 0.9, edges


def test_smooth_on_a_network_without_level_input_is_one_line_on_the_cli(
        tiny_ckpt, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`denoise --model RUN --param smooth=2` with a DnCNN (no level map): exit 2, one line
    naming the parameter and the checkpoint, and no output folder."""
    from cli_helpers import run_cli

    from usdenoise.io import write_image

    path, _ = tiny_ckpt
    write_image(tmp_path / "in" / "scan.png", torch.rand(1, 32, 32))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "denoise", tmp_path / "in" / "scan.png", "--model", path,
                           "--param", "smooth=2", "--out", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "smooth=2 needs a level-conditioned network" in lines[0], err
    assert str(path) in lines[0]
    assert not out.exists()


def test_passes_out_of_range_is_one_line_on_the_cli(
        tiny_ckpt, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`denoise --param passes=0` (or above MAX_PASSES): exit 2, one line naming the
    parameter and its range, and no output folder."""
    from cli_helpers import run_cli

    from usdenoise.io import write_image

    path, _ = tiny_ckpt
    write_image(tmp_path / "in" / "scan.png", torch.rand(1, 32, 32))
    out = tmp_path / "out"
    for bad in ("0", str(nd.MAX_PASSES + 1)):
        code, _, err = run_cli(capsys, "denoise", tmp_path / "in" / "scan.png", "--model", path,
                               "--param", f"passes={bad}", "--out", out)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "passes" in lines[0], err
        assert not out.exists()


def test_restore_local_mean_gives_back_a_brightness_shift_and_keeps_fine_detail() -> None:
    """A constant shift of the output comes back exactly (a Gaussian keeps constants); a
    pixel-scale checkerboard the denoiser removed stays removed (the Gaussian of σ = 8 px
    passes ~1e-4 of it)."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 64, 80)
    torch.testing.assert_close(nd.restore_local_mean(x - 0.05, x, 8.0), x, atol=1e-5, rtol=0)
    checker = ((torch.arange(64)[:, None] + torch.arange(80)[None]) % 2).float() * 0.2 - 0.1
    smooth = torch.full((1, 1, 64, 80), 0.5)
    got = nd.restore_local_mean(smooth, smooth + checker, 8.0)
    assert (got - smooth).abs().max() < 1e-3
    # a σ wider than the image is capped to fit the reflect padding, not an error
    small = torch.rand(1, 1, 10, 12)
    assert nd.restore_local_mean(small * 0.5, small, 50.0).shape == small.shape


def test_keep_mean_adds_the_blurred_residual_to_the_network_output(tiny_ckpt) -> None:
    path, net = tiny_ckpt
    x = torch.rand(1, 1, 40, 48)
    got = make_denoiser("network", checkpoint=str(path), keep_mean=6).denoise(x)
    with torch.no_grad():
        expected = nd.restore_local_mean(net(x).clamp(0, 1), x, 6.0).clamp(0, 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(UsdenoiseError, match="keep_mean"):
        make_denoiser("network", checkpoint=str(path), keep_mean=-1)


@pytest.mark.skipif(not nd.default_weights_path().is_file(), reason="default model not shipped")
def test_keep_mean_undoes_the_darkening_of_flat_tissue_on_real_scans(hc18_root) -> None:
    """Two HC18 test-split scans at native size with smooth=3 passes=3: the output is darker
    than the input over the scan sector by more than 0.005 on average; keep_mean=16 brings
    that within 0.002 and keeps the speckle index at least as low (within 1 point)."""
    from usdenoise.metrics import noreference as nr

    shifts: dict[str, list[float]] = {"plain": [], "kept": []}
    for sample, patches, outputs in _test_scans(
            hc18_root, 2, plain={"smooth": 3, "passes": 3},
            kept={"smooth": 3, "passes": 3, "keep_mean": 16}):
        x = sample["x"]
        sector = torch.from_numpy(nr.scan_sector(x))
        for name, y in outputs.items():
            shifts[name].append(float((y - x)[0, 0][sector].mean()))
        si = {k: nr.speckle_index(y, patches) for k, y in outputs.items()}
        assert si["kept"] <= si["plain"] + 0.01 * nr.speckle_index(x, patches), si
    assert sum(shifts["plain"]) / 2 < -0.005, shifts
    assert abs(sum(shifts["kept"]) / 2) < 0.002, shifts
