"""`usdenoise inspect IMAGE|DATA`: a table of speckle estimates and a JSON file."""

from __future__ import annotations

import json

import numpy as np
import torch
from cli_helpers import run_cli
from PIL import Image

from usdenoise.noise.speckle import Physics

torch.set_num_threads(1)


def write_scan(path, seed: int = 0) -> None:
    model = Physics(0.08, axial_sigma=1.5, lateral_sigma=2.5)
    y = model(torch.full((1, 1, 128, 128), 0.5), generator=torch.Generator().manual_seed(seed))
    Image.fromarray((y[0, 0].numpy() * 255).round().astype(np.uint8)).save(path)


def test_inspect_image_prints_and_writes_json(capsys, tmp_path) -> None:
    write_scan(tmp_path / "scan.png")
    out = tmp_path / "deep" / "speckle.json"
    code, stdout, stderr = run_cli(capsys, "inspect", tmp_path / "scan.png", "--out", out)
    assert code == 0, stderr
    assert "native speckle" in stdout and "scan" in stdout
    doc = json.loads(out.read_text())
    assert doc["kind"] == "image"
    est = doc["estimate"]
    assert est["patches"] > 0 and 0.05 < est["level"] < 0.11
    assert set(est["physics"]) == {"sigma", "axial_sigma", "lateral_sigma", "frequency"}


def test_inspect_folder_dataset_aggregate(capsys, tmp_path) -> None:
    for k in range(3):
        write_scan(tmp_path / f"im{k}.png", seed=k)
    out = tmp_path / "agg.json"
    code, stdout, stderr = run_cli(capsys, "inspect", f"folder:{tmp_path}", "--limit", 2,
                                   "--out", out)
    assert code == 0, stderr
    assert "median" in stdout
    doc = json.loads(out.read_text())["estimate"]
    assert doc["images"] == 2 and doc["measured"] == 2 and len(doc["per_image"]) == 2


def test_inspect_constant_image_reports_no_patches(capsys, tmp_path) -> None:
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "flat.png")
    code, stdout, stderr = run_cli(capsys, "inspect", tmp_path / "flat.png")
    assert code == 0 and "no homogeneous patches" in stderr


def test_inspect_bad_input_is_one_line_exit_2(capsys, tmp_path) -> None:
    for args in (["inspect", tmp_path / "missing.png"], ["inspect", "phantom", "--limit", 0],
                 ["inspect", "phantom", "--out", tmp_path / "x.txt"]):
        code, _, stderr = run_cli(capsys, *args)
        assert code == 2 and stderr.startswith("usdenoise: error:") and "Traceback" not in stderr


def test_inspect_is_registered_on_the_app() -> None:
    from usdenoise.cli.app import app
    from usdenoise.cli.inspect import inspect_command

    assert any(c.callback is inspect_command for c in app.registered_commands)
