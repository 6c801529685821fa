"""`usdenoise simulate`: paired clean/noisy/mask files, the manifest, seeds and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from usdenoise.cli.app import main
from usdenoise.core.errors import UsdenoiseError
from usdenoise.noise.simulate import simulate

BASE = ["simulate", "phantom", "--size", "32", "--limit", "3"]


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def test_writes_paired_folders_and_manifest(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sim"
    assert run_cli([*BASE, "--noise", "rayleigh:0.25", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().err
    stems = {sub: sorted(p.stem for p in (out / sub).glob("*.png"))
             for sub in ("clean", "noisy", "masks")}
    assert len(stems["clean"]) == 3
    assert stems["clean"] == stems["noisy"] == stems["masks"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["noise"] == "rayleigh:0.25" and manifest["size"] == 32
    assert [e["id"] for e in manifest["images"]] == stems["clean"]
    for entry in manifest["images"]:
        assert {"id", "subject", "source", "noise", "level", "seed"} <= set(entry)
        assert entry["noise"] == "rayleigh"
        assert entry["level"] == pytest.approx(0.25)
        assert entry["seed"] == 0
        assert entry["source"]
    clean = read_png(out / "clean" / f"{stems['clean'][0]}.png")
    noisy = read_png(out / "noisy" / f"{stems['clean'][0]}.png")
    mask = read_png(out / "masks" / f"{stems['clean'][0]}.png")
    assert clean.shape == noisy.shape == mask.shape == (32, 32)
    assert not np.array_equal(clean, noisy)
    assert set(np.unique(mask)) <= {0, 1, 2, 3}
    assert not list(tmp_path.glob(".*partial*"))  # the staging folder is gone


def test_same_seed_same_noise_other_seed_differs(tmp_path: Path) -> None:
    outs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        outs[name] = tmp_path / name
        simulate("phantom", noise="rayleigh:0.25", out_dir=outs[name], size=32, limit=2, seed=seed)
    for image in sorted((outs["a"] / "noisy").glob("*.png")):
        same = read_png(outs["b"] / "noisy" / image.name)
        other = read_png(outs["c"] / "noisy" / image.name)
        assert np.array_equal(read_png(image), same)
        assert not np.array_equal(read_png(image), other)
        # the clean image does not depend on the noise seed
        assert np.array_equal(read_png(outs["a"] / "clean" / image.name),
                              read_png(outs["c"] / "clean" / image.name))


def test_range_spec_records_each_drawn_level(tmp_path: Path) -> None:
    manifest = simulate("phantom", noise="rayleigh:0.1-0.5", out_dir=tmp_path / "r", size=32,
                        limit=4, seed=3)
    levels = [e["level"] for e in manifest["images"]]
    assert all(isinstance(v, float) and 0.1 <= v <= 0.5 for v in levels)
    assert len(set(levels)) == len(levels)  # one draw per image
    on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert [e["level"] for e in on_disk["images"]] == levels
    again = simulate("phantom", noise="rayleigh:0.1-0.5", out_dir=tmp_path / "s", size=32,
                     limit=4, seed=3)
    assert [e["level"] for e in again["images"]] == levels


def test_mixture_records_the_component_drawn(tmp_path: Path) -> None:
    manifest = simulate("phantom", noise="mixture:rayleigh:0.2|gamma:4", out_dir=tmp_path / "m",
                        size=32, limit=6, seed=0)
    expected = {"rayleigh": 0.2, "gamma": 4.0}
    for entry in manifest["images"]:
        assert entry["level"] == pytest.approx(expected[entry["noise"]])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nosuch:x", "--noise", "rayleigh:0.25"], "unknown data set"),
        (["phantom", "--noise", "nope:0.25"], "unknown noise"),
        (["phantom", "--noise", "rayleigh:-0.25"], "rayleigh:-0.25"),
        (["phantom", "--noise", "rayleigh:abc"], "not a number"),
        (["phantom", "--noise", "rayleigh:0.25", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(tmp_path: Path, capsys, args, words) -> None:
    out = tmp_path / "sim"
    code = run_cli(["simulate", *args, "--out", str(out), "--size", "32"])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_parent_is_a_file(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    out = blocker / "sim"
    code = run_cli([*BASE, "--noise", "rayleigh:0.25", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot write" in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_non_empty_out_needs_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sim"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = run_cli([*BASE, "--noise", "rayleigh:0.25", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and str(out) in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert run_cli([*BASE, "--noise", "rayleigh:0.25", "--out", str(out), "--overwrite"]) == 0
    assert len(list((out / "noisy").glob("*.png"))) == 3


def test_library_rejects_bad_spec_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match="unknown noise"):
        simulate("phantom", noise="speckles:1", out_dir=tmp_path / "x", size=32, limit=1)
    assert list(tmp_path.iterdir()) == []
