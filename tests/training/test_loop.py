"""fit(): outputs, determinism, exact resume, atomic checkpoints, early stop, bad input.

Everything is tiny (32 x 32 phantoms, 16 x 16 crops, a 4-channel DiConvAE, 2 batches per
epoch) so the whole file runs in well under a minute on one CPU core.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import usdenoise.training.loop as train_module
from usdenoise import __version__
from usdenoise.cli.app import main
from usdenoise.core.errors import UsdenoiseError
from usdenoise.training.config import TrainConfig
from usdenoise.training.loop import fit
from usdenoise.training.state import (
    capture_rng,
    load_train_state,
    restore_rng,
    save_train_state,
)

TINY = dict(data="phantom:12", image_size=32, crop=16, batch_size=4, epochs=1, limit=2,
            model={"channels": [4, 4, 4, 4]}, device="cpu", progress=False, loss="l1+msssim")


def _config(out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **changes})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def _without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "crops_per_second")}
            for r in rows]


# --- outputs ---------------------------------------------------------------------------------


def test_fit_writes_checkpoints_metrics_curve_and_splits(tmp_path: Path) -> None:
    from usdenoise.checkpoint import load_model

    run = tmp_path / "run"
    best = fit(_config(run, epochs=2))
    assert best == run / "model_best.safetensors" and best.is_file()
    for name in ("model.safetensors", "model.json", "model_best.json", "splits.json",
                 "train_state.safetensors", "metrics.csv", "loss_curve.png"):
        assert (run / name).is_file(), name
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {"train_loss", "val_loss", "val_psnr", "val_ssim", "lr",
                            "crops_per_second"}
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("train_loss", "val_psnr"))
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sidecar = json.loads((run / "model.json").read_text())
    assert sidecar["arch"] == "diconvae" and sidecar["package_version"] == __version__
    assert sidecar["config"]["channels"] == [4, 4, 4, 4]
    meta = sidecar["meta"]
    assert meta["epoch"] == 2 and meta["config"]["loss"] == "l1+msssim"
    assert meta["data"]["spec"] == "phantom:12" and meta["data"]["noise"] == "rayleigh:0.1-0.75"
    assert sidecar["metrics"]["val_psnr"] == pytest.approx(float(rows[-1]["val_psnr"]))
    splits = json.loads((run / "splits.json").read_text())
    assert "train" in json.dumps(splits) and "val" in json.dumps(splits)
    # the best checkpoint is a working denoiser
    net, _ = load_model(best)
    x = torch.rand(1, 1, 24, 24)
    assert net.eval()(x).shape == x.shape


def test_progress_is_quiet_when_not_a_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fit(_config(tmp_path / "run", progress=None))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_bf16_autocast_and_channels_last_run_on_cpu(tmp_path: Path) -> None:
    """The CUDA options also work on CPU (slower there, so off by default)."""
    run = tmp_path / "run"
    fit(_config(run, amp=True, channels_last=True))
    row = _rows(run)[0]
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_loss"]))
    weights = _weights(run / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())


# --- reproducibility and resume --------------------------------------------------------------


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    a = fit(_config(tmp_path / "a", seed=3))
    b = fit(_config(tmp_path / "b", seed=3))
    _assert_same_weights(a, b)
    c = fit(_config(tmp_path / "c", seed=4))
    assert not torch.equal(_weights(a)["head.weight"], _weights(c)["head.weight"])


def test_loader_workers_do_not_change_the_result(tmp_path: Path) -> None:
    """Crops are seeded per (seed, epoch, image), not by the process that loads them."""
    a = fit(_config(tmp_path / "a", workers=0))
    b = fit(_config(tmp_path / "b", workers=2))
    _assert_same_weights(a, b)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """2 epochs straight == 1 epoch, then --resume with epochs=2 (constant learning rate)."""
    straight = fit(_config(tmp_path / "straight", epochs=2, schedule="none"))
    fit(_config(tmp_path / "split", epochs=1, schedule="none"))
    resumed = fit(_config(tmp_path / "other", epochs=2, schedule="none",
                          resume=str(tmp_path / "split")))
    assert resumed == tmp_path / "split" / "model_best.safetensors"
    _assert_same_weights(straight.parent / "model.safetensors",
                         resumed.parent / "model.safetensors")
    assert _without_timing(_rows(straight.parent)) == _without_timing(_rows(resumed.parent))
    state_a = load_train_state(straight.parent / "train_state.safetensors")
    state_b = load_train_state(resumed.parent / "train_state.safetensors")
    for key, value in state_a["optimizer"]["state"][0].items():
        assert torch.equal(value, state_b["optimizer"]["state"][0][key])


class _Crash(Exception):
    pass


def test_crash_after_an_epoch_then_resume_matches_a_straight_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cosine schedule, 3 epochs; the process dies after writing epoch 1."""
    straight = fit(_config(tmp_path / "straight", epochs=3))
    original = train_module._write_epoch

    def write_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise _Crash

    monkeypatch.setattr(train_module, "_write_epoch", write_then_die)
    with pytest.raises(_Crash):
        fit(_config(tmp_path / "crashed", epochs=3))
    monkeypatch.setattr(train_module, "_write_epoch", original)
    resumed = fit(_config(tmp_path / "crashed", epochs=3, resume=str(tmp_path / "crashed")))
    _assert_same_weights(straight.parent / "model.safetensors",
                         resumed.parent / "model.safetensors")
    assert _without_timing(_rows(straight.parent)) == _without_timing(_rows(resumed.parent))


def test_interrupted_state_write_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    fit(_config(run, epochs=1, schedule="none"))
    before = (run / "train_state.safetensors").read_bytes()

    def half_write(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of the write

    monkeypatch.setattr(Path, "write_bytes", half_write)
    with pytest.raises(KeyboardInterrupt):
        fit(_config(run, epochs=2, schedule="none", resume=str(run)))
    monkeypatch.undo()
    assert (run / "train_state.safetensors").read_bytes() == before
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    # and the run still resumes to the same result as a straight run
    fit(_config(run, epochs=2, schedule="none", resume=str(run)))
    straight = fit(_config(tmp_path / "straight", epochs=2, schedule="none"))
    _assert_same_weights(straight.parent / "model.safetensors", run / "model.safetensors")


def test_resume_with_different_settings_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_config(run))
    with pytest.raises(UsdenoiseError) as info:
        fit(_config(run, epochs=2, lr=0.01, resume=str(run)))
    message = str(info.value)
    assert "\n" not in message and "lr 0.001 -> 0.01" in message and str(run) in message


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_config(run))
    with pytest.raises(UsdenoiseError, match="already holds a training run"):
        fit(_config(run))


def test_resume_of_a_folder_without_state(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match="no training state"):
        fit(_config(tmp_path / "x", resume=str(tmp_path)))


def test_early_stopping_on_validation_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])

    def fake_validate(*args, **kwargs):
        return {"val_loss": next(losses), "val_psnr": 20.0, "val_ssim": 0.5}

    monkeypatch.setattr(train_module, "_validate", fake_validate)
    run = tmp_path / "run"
    fit(_config(run, epochs=6, patience=2))
    assert [r["epoch"] for r in _rows(run)] == ["1", "2", "3", "4"]
    best = json.loads((run / "model_best.json").read_text())
    assert best["meta"]["epoch"] == 2


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"arch": "resnet"}, "unknown architecture 'resnet'"),
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"model": {"colours": 3}}, "unknown option 'colours'"),
        ({"loss": "l1+"}, "missing term"),
        ({"loss": "2*"}, "missing loss name"),
        ({"loss": "l3"}, "unknown loss 'l3'"),
        ({"noise": "pink:0.2"}, "pink"),
        ({"data": "phantom:4"}, "fewer than --batch-size"),
        ({"data": "folder:/no/such/dir"}, "folder not found"),
        ({"device": "tpu"}, "--device"),
        ({"loss": "l1+perceptual"}, "vgg"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, changes: dict, words: str) -> None:
    with pytest.raises(UsdenoiseError) as info:
        fit(_config(tmp_path / "run", **changes))
    message = str(info.value)
    assert "\n" not in message
    assert words.lower() in message.lower()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_out_of_memory_suggests_smaller_batch_or_crop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module.DenoiseTask, "batch", out_of_memory)
    with pytest.raises(UsdenoiseError) as info:
        fit(_config(tmp_path / "run"))
    assert "--batch-size" in str(info.value) and "--crop" in str(info.value)
    assert "\n" not in str(info.value)


# --- command line ----------------------------------------------------------------------------


def test_cli_trains_and_resumes_without_repeating_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["train", "phantom:12", "--size", "32", "--crop", "16", "--batch-size", "4",
            "--arch-param", "channels=4,4,4,4", "--loss", "l1", "--epochs", "1",
            "--limit", "2", "--device", "cpu", "--schedule", "none", "--out", str(run)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(run), "--epochs", "2"])
    assert exit_info.value.code in (0, None)
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]
    assert "best model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(run), "--lr", "0.1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lr 0.001 -> 0.1" in err


def test_cli_needs_a_run_folder(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "phantom:12", "--epochs", "1"])
    assert exit_info.value.code == 2
    assert "--out RUN" in capsys.readouterr().err


def test_cli_config_file_and_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 1\nlearning_rate = 0.1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "learning_rate" in err


# --- train state file ------------------------------------------------------------------------


def test_train_state_round_trip_keeps_structure(tmp_path: Path) -> None:
    tree = {
        "model": {"w": torch.arange(6.0).view(2, 3), "n": torch.tensor(3)},
        "optimizer": {"state": {0: {"step": torch.tensor(2.0)}},
                      "param_groups": [{"betas": (0.9, 0.999), "params": [0], "lr": 1e-3}]},
        "best": math.inf, "none": None, "flag": True, "text": "x",
        "array": np.arange(4, dtype=np.uint32),
        "__odd": 1,
    }
    path = tmp_path / "state.safetensors"
    save_train_state(path, tree)
    back = load_train_state(path)
    assert torch.equal(back["model"]["w"], tree["model"]["w"])
    assert back["optimizer"]["state"][0]["step"].item() == 2.0
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["best"] == math.inf and back["none"] is None and back["flag"] is True
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3]
    assert back["__odd"] == 1
    # the file is plain safetensors: no pickle anywhere
    assert b"pickle" not in path.read_bytes() and path.read_bytes()[8:9] == b"{"


def test_train_state_refuses_truncated_or_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    save_train_state(path, {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(UsdenoiseError, match="corrupt or truncated"):
        load_train_state(path)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(UsdenoiseError, match="not a usdenoise training state"):
        load_train_state(path)


def test_rng_capture_and_restore_repeat_every_source(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(5)
    path = tmp_path / "rng.safetensors"
    save_train_state(path, {"rng": capture_rng({"noise": generator})})

    def draw() -> tuple:
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(),
                torch.rand(3, generator=generator).tolist())

    first = draw()
    restore_rng(load_train_state(path)["rng"], {"noise": generator})
    assert draw() == first


def test_cache_gives_the_same_weights(tmp_path) -> None:
    """Caching decoded images is a speed option only: the result must not change."""
    from safetensors.torch import load_file

    results = []
    for cache in (False, True):
        config = TrainConfig(
            data="phantom:24", out=str(tmp_path / f"c{cache}"), preset="fast",
            model={"channels": 4}, loss="l1", epochs=2, batch_size=4, crop=16,
            image_size=32, limit=2, cache=cache, progress=False,
        )
        fit(config)
        results.append(load_file(str(tmp_path / f"c{cache}" / "model.safetensors")))
    for key, value in results[0].items():
        assert torch.equal(value, results[1][key]), key


# --- task-aware losses through a frozen segmenter ----------------------------------------------


@pytest.fixture(scope="module")
def segmenter_run(tmp_path_factory) -> Path:
    """A tiny 2-class MONAI UNet saved as a segmenter run (untrained: only the plumbing counts)."""
    pytest.importorskip("monai")
    from usdenoise.checkpoint import save_model
    from usdenoise.models.segmenters import build_segmenter

    torch.manual_seed(0)
    net = build_segmenter("unet", "fast", channels=[4, 8])
    run = tmp_path_factory.mktemp("segmenter")
    save_model(run / "model_best", net, arch="unet", arch_config=net.config, kind="segmenter",
               meta={"class_names": ["background", "head"], "image_size": 32})
    return run


def test_fit_with_the_task_loss_records_the_segmenter(tmp_path: Path, segmenter_run) -> None:
    run = tmp_path / "run"
    fit(_config(run, epochs=2, loss="l1+0.1*task", segmenter=str(segmenter_run)))
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("train_loss", "val_loss"))
    sidecar = json.loads((run / "model_best.json").read_text())
    assert sidecar["meta"]["config"]["segmenter"] == str(segmenter_run)
    assert sidecar["meta"]["config"]["loss"] == "l1+0.1*task"
    weights = _weights(run / "model_best.safetensors")
    assert not any(key.startswith(("segmenter", "net.model")) for key in weights)


def _thresholded_folder(root: Path, count: int) -> Path:
    """Images of dark (50) and bright (200) blocks; the mask is exactly `image > 0.5`."""
    from usdenoise.io import write_image, write_mask

    rng = np.random.default_rng(0)
    for i in range(count):
        blocks = rng.random((8, 8)) > 0.5
        mask = np.kron(blocks, np.ones((4, 4))).astype(np.int64)
        image = np.where(mask == 1, 200, 50).astype(np.float32) / 255
        write_image(root / f"img{i}.png", torch.from_numpy(image)[None])
        write_mask(root / "masks" / f"img{i}.png", mask)
    return root


def test_task_loss_gets_the_masks_of_its_own_crops(tmp_path: Path, segmenter_run,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from usdenoise.losses.parser import TaskLoss

    data = _thresholded_folder(tmp_path / "data", 12)
    seen: list[bool] = []
    original = TaskLoss.forward

    def spy(self, pred, target, *, mask):
        seen.append(mask.shape == target[:, 0].shape
                    and torch.equal(target[:, 0] > 0.5, mask.bool()))
        return original(self, pred, target, mask=mask)

    monkeypatch.setattr(TaskLoss, "forward", spy)
    fit(_config(tmp_path / "run", data=f"folder:{data}", image_size=None, loss="l1+task",
                segmenter=str(segmenter_run)))
    assert len(seen) >= 3 and all(seen)  # train batches and validation


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"loss": "l1+task"}, "needs a frozen segmenter: give --segmenter RUN"),
        ({"loss": "l1", "segmenter": "SEG"}, "only used by the task losses"),
        ({"loss": "l1+task", "segmenter": "/no/such/run"}, "segmenter /no/such/run: not found"),
        ({"task": "segment", "loss": "dice+ce", "segmenter": "SEG"}, "setting of task 'denoise'"),
    ],
)
def test_task_loss_bad_input_is_one_line(tmp_path: Path, segmenter_run, changes: dict,
                                         words: str) -> None:
    if changes.get("segmenter") == "SEG":
        changes = {**changes, "segmenter": str(segmenter_run)}
    with pytest.raises(UsdenoiseError) as info:
        fit(_config(tmp_path / "run", **changes))
    assert "\n" not in str(info.value) and words in str(info.value)


def test_task_loss_needs_masks_the_segmenter_knows(tmp_path: Path, segmenter_run,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import usdenoise.training.loop as data_module  # the loop's own reference
    from usdenoise.io import write_image

    plain = tmp_path / "plain"
    for i in range(12):
        write_image(plain / f"img{i}.png", torch.rand(1, 32, 32))
    with pytest.raises(UsdenoiseError) as info:
        fit(_config(tmp_path / "a", data=f"folder:{plain}", image_size=None, loss="l1+task",
                    segmenter=str(segmenter_run)))
    message = str(info.value)
    assert message.startswith(f"folder:{plain}: ") and "has no mask" in message
    assert "\n" not in message
    load = data_module.load_dataset  # four classes (head, midline, ventricles) for 2
    monkeypatch.setattr(data_module, "load_dataset",
                        lambda spec, **kw: load(spec, structures=True, **kw))
    with pytest.raises(UsdenoiseError, match=r"phantom:12: masks have 4 classes .* predicts "
                                             r"only 2$"):
        fit(_config(tmp_path / "b", loss="l1+task", segmenter=str(segmenter_run)))


def test_cli_trains_with_a_segmenter(tmp_path: Path, segmenter_run) -> None:
    from typer.testing import CliRunner

    from usdenoise.cli.app import app

    run = tmp_path / "run"
    args = ["train", "phantom:12", "--size", "32", "--crop", "16", "--batch-size", "4",
            "--arch-param", "channels=4,4,4,4", "--loss", "l1+msssim+0.1*task",
            "--segmenter", str(segmenter_run), "--epochs", "1", "--limit", "1",
            "--device", "cpu", "--no-progress", "--out", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "model.json").read_text())["meta"]["config"]
    assert config["segmenter"] == str(segmenter_run)


def test_cli_segmenter_that_is_a_denoiser(tmp_path: Path, segmenter_run,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    denoiser_run = tmp_path / "den"
    fit(_config(denoiser_run, loss="l1", limit=1))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "phantom:12", "--size", "32", "--crop", "16", "--batch-size", "4",
              "--loss", "l1+task", "--segmenter", str(denoiser_run), "--epochs", "1",
              "--device", "cpu", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checkpoint is a denoiser, not a segmenter" in err and str(denoiser_run) in err
