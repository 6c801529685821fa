"""Checkpoints: safetensors + JSON sidecar, atomic writes, never unpickled by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from usdenoise import __version__
from usdenoise.checkpoint import load_model, save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.models import build_network


def _tiny(arch: str = "diconvae") -> torch.nn.Module:
    torch.manual_seed(0)
    extra = {"channels": 4} if arch != "diconvae" else {"channels": [4, 4, 6, 6]}
    return build_network(arch, "fast", **extra).eval()


def _save(tmp_path: Path, net: torch.nn.Module, name: str = "model", arch: str = "diconvae",
          **kw) -> Path:
    return save_model(tmp_path / name, net, arch=arch, arch_config=net.config,
                      meta={"epoch": 3, "loss": "l1"}, **kw)


@pytest.mark.parametrize("arch", ["diconvae", "dncnn", "unet"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, arch: str) -> None:
    net = _tiny(arch)
    # BatchNorm running statistics must travel too
    net.train()
    net(torch.rand(4, 1, 16, 16))
    net.eval()
    path = _save(tmp_path, net, arch=arch, metrics={"psnr": 31.5})
    assert path == tmp_path / "model.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    model, meta = load_model(path)
    assert not model.training
    x = torch.rand(1, 1, 21, 18)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert meta["arch"] == arch and meta["kind"] == "denoiser"
    assert meta["config"] == net.config
    assert meta["package_version"] == __version__
    assert meta["metrics"] == {"psnr": 31.5}
    assert meta["meta"] == {"epoch": 3, "loss": "l1"}


def test_loads_from_sidecar_and_run_folder(tmp_path: Path) -> None:
    net = _tiny()
    _save(tmp_path, net)
    x = torch.rand(1, 1, 16, 16)
    for p in (tmp_path / "model.json", tmp_path, tmp_path / "model.safetensors"):
        model, _ = load_model(p)
        with torch.no_grad():
            assert torch.equal(model(x), net(x))


def test_save_accepts_suffixes_and_overwrites(tmp_path: Path) -> None:
    net = _tiny()
    save_model(tmp_path / "a.safetensors", net, arch="diconvae", arch_config=net.config, meta={})
    save_model(tmp_path / "a.json", net, arch="diconvae", arch_config=net.config, meta={"n": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]
    assert load_model(tmp_path / "a.safetensors")[1]["meta"] == {"n": 2}


def test_failed_save_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    net = _tiny()
    _save(tmp_path, net)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, _tiny("dncnn"), arch="dncnn")
    # old checkpoint untouched, no temporary files left
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_unserialisable_meta_is_a_clear_error(tmp_path: Path) -> None:
    net = _tiny()
    meta = {"a": 1}
    meta["self"] = meta  # circular
    with pytest.raises(UsdenoiseError, match="not JSON-serialisable"):
        save_model(tmp_path / "m", net, arch="diconvae", arch_config=net.config, meta=meta)
    assert list(tmp_path.iterdir()) == []


def test_missing_sidecar(tmp_path: Path) -> None:
    _save(tmp_path, _tiny())
    (tmp_path / "model.json").unlink()
    with pytest.raises(UsdenoiseError, match=r"model\.safetensors.*sidecar model\.json is missing"):
        load_model(tmp_path / "model.safetensors")


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match=r"nope\.safetensors: checkpoint file not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(UsdenoiseError, match="run folder has no model.safetensors"):
        load_model(tmp_path)


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = _save(tmp_path, _tiny())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsdenoiseError, match=r"model\.safetensors: corrupted or truncated") as e:
        load_model(path)
    assert "\n" not in str(e.value)


def test_garbage_safetensors(tmp_path: Path) -> None:
    path = _save(tmp_path, _tiny())
    path.write_bytes(b"\x00\x01 not a safetensors file at all")
    with pytest.raises(UsdenoiseError, match="corrupted or truncated"):
        load_model(path)


def test_flipped_byte_is_caught_by_checksum(tmp_path: Path) -> None:
    path = _save(tmp_path, _tiny())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the tensor data: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(UsdenoiseError, match="do not match the sha256"):
        load_model(path)


def test_checkpoint_from_another_architecture(tmp_path: Path) -> None:
    net = _tiny("dncnn")
    save_model(tmp_path / "m", net, arch="dncnn", arch_config=net.config, meta={})
    # a sidecar claiming another architecture (e.g. copied from another run)
    sidecar = json.loads((tmp_path / "m.json").read_text())
    sidecar["arch"] = "diconvae"
    sidecar["config"] = _tiny().config
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    with pytest.raises(UsdenoiseError, match="checkpoint from another architecture") as e:
        load_model(tmp_path / "m.safetensors")
    assert "\n" not in str(e.value) and "m.safetensors" in str(e.value)


def test_same_architecture_other_config(tmp_path: Path) -> None:
    net = _tiny("dncnn")
    save_model(tmp_path / "m", net, arch="dncnn", arch_config={**net.config, "channels": 8},
               meta={})
    with pytest.raises(UsdenoiseError, match="checkpoint from another architecture"):
        load_model(tmp_path / "m")


def test_wrong_kind(tmp_path: Path) -> None:
    _save(tmp_path, _tiny())
    with pytest.raises(UsdenoiseError, match="is a denoiser, not a segmenter"):
        load_model(tmp_path / "model.safetensors", kind="segmenter")
    assert load_model(tmp_path / "model.safetensors", kind="denoiser")[1]["kind"] == "denoiser"


def test_bad_sidecars(tmp_path: Path) -> None:
    path = _save(tmp_path, _tiny())
    side = tmp_path / "model.json"
    side.write_text("{not json")
    with pytest.raises(UsdenoiseError, match=r"model\.json: checkpoint sidecar is not valid JSON"):
        load_model(path)
    side.write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsdenoiseError, match="not a usdenoise checkpoint sidecar"):
        load_model(path)
    side.write_text(json.dumps({"format": "usdenoise-checkpoint", "kind": "denoiser",
                                "arch": "resnet", "config": {}}))
    with pytest.raises(UsdenoiseError, match="unknown architecture 'resnet'"):
        load_model(path)


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_pickle_refused_unless_allowed(tmp_path: Path, suffix: str) -> None:
    net = _tiny()
    _save(tmp_path, net)
    pth = tmp_path / f"model{suffix}"
    torch.save(net.state_dict(), pth)
    with pytest.raises(UsdenoiseError, match=rf"model\{suffix}: refusing a pickled"):
        load_model(pth)
    model, _ = load_model(pth, allow_pickle=True)  # weights-only, sidecar model.json
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_pickle_with_code_is_refused_even_when_allowed(tmp_path: Path) -> None:
    net = _tiny()
    _save(tmp_path, net)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": net.state_dict(), "x": Evil()}, tmp_path / "model.pth")
    with pytest.raises(UsdenoiseError, match="cannot read as a weights-only pickle"):
        load_model(tmp_path / "model.pth", allow_pickle=True)


def test_ddp_and_compile_wrappers_are_unwrapped(tmp_path: Path) -> None:
    net = _tiny()

    class Wrapped(torch.nn.Module):  # what torch.compile returns keeps the net in _orig_mod
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    save_model(tmp_path / "model", Wrapped(net), arch="diconvae", arch_config=net.config,
               meta={})
    model, _ = load_model(tmp_path / "model")
    assert set(model.state_dict()) == set(net.state_dict())


def test_run_folder_prefers_the_best_epoch(tmp_path: Path) -> None:
    latest, best = _tiny(), _tiny()
    with torch.no_grad():
        for p in best.parameters():
            p.add_(1.0)
    save_model(tmp_path / "model", latest, arch="diconvae", arch_config=latest.config)
    save_model(tmp_path / "model_best", best, arch="diconvae", arch_config=best.config)
    loaded, _ = load_model(tmp_path)
    for a, b in zip(loaded.state_dict().values(), best.state_dict().values(), strict=True):
        assert torch.equal(a, b)
