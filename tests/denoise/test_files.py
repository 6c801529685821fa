"""`usdenoise denoise`: files and folders, formats and bit depth, DICOM cine, workers, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from io_fixtures import gradient, write_dicom_file, write_pillow

from usdenoise.cli.app import main
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.files import denoise_files, frame_paths, output_path
from usdenoise.denoise.network import default_weights_path
from usdenoise.denoise.registry import make_denoiser
from usdenoise.io.images import read_frames, write_image

WEIGHTS = default_weights_path()


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def outputs(out: Path) -> list[str]:
    """The files in `out` but the ownership marker every run writes there."""
    return sorted(p.name for p in out.iterdir() if p.name != ".usdenoise-output.json")


def lee(x: torch.Tensor, **params) -> torch.Tensor:
    return make_denoiser("lee", **params).denoise(x)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """in/a8.png (8 bit), in/b16.png (16 bit), in/sub/c.png (only found with --recursive)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_pillow(root / "a8.png", gradient(24, 20, bits=8))
    write_pillow(root / "b16.png", gradient(24, 20, bits=16, seed=1))
    write_pillow(root / "sub" / "c.png", gradient(24, 20, bits=8, seed=2))
    return root


def test_folder_keeps_names_and_bit_depth(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder), "--method", "lee", "--out", str(out)]) == 0
    assert "denoised 2 file(s)" in capsys.readouterr().err
    assert outputs(out) == ["a8.png", "b16.png"]  # not recursive
    a8, b16 = png(out / "a8.png"), png(out / "b16.png")
    assert a8.dtype == np.uint8 and b16.dtype == np.uint16
    assert a8.shape == b16.shape == (24, 20)
    # the values are the filter's output, quantised to the input's bit depth
    expected8 = lee(read_frames(folder / "a8.png"))[0, 0].numpy() * 255
    expected16 = lee(read_frames(folder / "b16.png"))[0, 0].numpy() * 65535
    assert np.abs(a8 - expected8).max() <= 0.5 + 1e-3
    assert np.abs(b16.astype(np.float64) - expected16).max() <= 0.5 + 0.1
    assert b16.max() > 255  # really 16-bit values, not 8-bit ones stored in 16 bits
    assert not np.array_equal(a8, png(folder / "a8.png"))


def test_recursive_keeps_subfolders(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = denoise_files([folder], out_dir=out, method="median", params={}, recursive=True)
    assert sorted(p.relative_to(out).as_posix() for p in summary.written) == [
        "a8.png", "b16.png", "sub/c.png"]
    assert png(out / "sub" / "c.png").shape == (24, 20)


def test_single_files_and_params(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder / "a8.png"), str(folder / "sub" / "c.png"),
                    "--method", "lee", "--param", "window=3", "--out", str(out)]) == 0
    assert outputs(out) == ["a8.png", "c.png"]
    expected = lee(read_frames(folder / "a8.png"), window=3)[0, 0].numpy() * 255
    assert np.abs(png(out / "a8.png") - expected).max() <= 0.5 + 1e-3


def write_cine(path: Path) -> np.ndarray:
    frames = np.stack([gradient(24, 20, bits=8, seed=s) for s in range(3)])
    write_dicom_file(path, frames)
    return frames


def test_dicom_cine_frame_by_frame_new_uid(tmp_path: Path) -> None:
    import pydicom

    source = tmp_path / "in" / "cine.dcm"
    source.parent.mkdir()
    write_cine(source)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(source), "--method", "median", "--out", str(out)]) == 0
    before, after = pydicom.dcmread(source), pydicom.dcmread(out / "cine.dcm")
    assert int(after.NumberOfFrames) == 3
    assert after.SOPInstanceUID != before.SOPInstanceUID
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert after.PatientID == before.PatientID and after.StudyInstanceUID == before.StudyInstanceUID
    frames = read_frames(source)
    expected = torch.cat([make_denoiser("median").denoise(f[None]) for f in frames])
    got = read_frames(out / "cine.dcm")
    assert got.shape == (3, 1, 24, 20)
    assert (got - expected).abs().max() <= 0.5 / 255 + 1e-6
    # frame by frame: each output frame differs, as the inputs do
    assert not torch.equal(got[0], got[1])


def test_dicom_as_png_one_file_per_frame(tmp_path: Path) -> None:
    source = tmp_path / "cine.dcm"
    write_cine(source)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(source), "--method", "median", "--dicom-as", "png",
                    "--out", str(out)]) == 0
    names = outputs(out)
    assert names == ["cine_0000.png", "cine_0001.png", "cine_0002.png"]
    expected = make_denoiser("median").denoise(read_frames(source)[1:2])[0, 0].numpy() * 255
    assert np.abs(png(out / "cine_0001.png") - expected).max() <= 0.5 + 1e-3
    # the frame files count as existing outputs too
    assert run_cli(["denoise", str(source), "--method", "median", "--dicom-as", "png",
                    "--out", str(out)]) == 2


def test_metaimage(tmp_path: Path) -> None:
    source = tmp_path / "scan.mha"
    image = torch.from_numpy(gradient(24, 20, bits=8, seed=4).astype(np.float32) / 255)
    write_image(source, image[None])
    out = tmp_path / "out"
    summary = denoise_files([source], out_dir=out, method="lee", params={})
    assert summary.written == [out / "scan.mha"]
    got = read_frames(out / "scan.mha")
    expected = lee(read_frames(source))
    assert got.shape == (1, 1, 24, 20)
    assert (got - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_two_workers_match_one(folder: Path, tmp_path: Path) -> None:
    write_cine(folder / "cine.dcm")
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, "1"), (two, "2")):
        assert run_cli(["denoise", str(folder), "--recursive", "--method", "lee", "--dicom-as",
                        "png", "--workers", workers, "--out", str(out)]) == 0
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(files) == 6  # a8, b16, sub/c and three cine frames
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.png"))
    for name in files:
        assert np.array_equal(png(one / name), png(two / name)), name


def test_existing_outputs_kept_without_overwrite(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "b16.png").write_bytes(b"mine")
    args = ["denoise", str(folder), "--method", "lee", "--out", str(out)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "b16.png: output exists (use --overwrite)" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["b16.png"]  # nothing written at all
    assert (out / "b16.png").read_bytes() == b"mine"
    assert run_cli([*args, "--overwrite"]) == 0
    assert png(out / "b16.png").dtype == np.uint16


def test_two_inputs_one_output_name(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_pillow(other / "a8.png", gradient(24, 20, bits=8, seed=9))
    with pytest.raises(UsdenoiseError, match="would both be written"):
        denoise_files([folder, other], out_dir=tmp_path / "out", method="lee", params={})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["same", "inside"])
def test_out_inside_input_folder(folder: Path, capsys, where) -> None:
    out = folder if where == "same" else folder / "denoised"
    assert run_cli(["denoise", str(folder), "--method", "lee", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "inside the input folder" in err and err.count("\n") == 1
    assert not (folder / "denoised").exists()


def test_file_next_to_its_output(folder: Path, capsys) -> None:
    assert run_cli(["denoise", str(folder / "a8.png"), "--method", "lee",
                    "--out", str(folder)]) == 2
    assert "would overwrite its own input" in capsys.readouterr().err


def add_broken(folder: Path) -> Path:
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return broken


def test_unreadable_file_skipped_with_warning(folder: Path, tmp_path: Path, capsys) -> None:
    add_broken(folder)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder), "--method", "lee", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "broken.png" in err
    assert "denoised 2 file(s)" in err and "skipped 1 file(s)" in err
    assert outputs(out) == ["a8.png", "b16.png"]
    with pytest.warns(UserWarning, match="broken.png"):
        summary = denoise_files([folder], out_dir=tmp_path / "lib", method="lee", params={})
    assert [p.name for p, _ in summary.skipped] == ["broken.png"]
    assert len(summary.written) == 2


def test_strict_stops_with_no_output(folder: Path, tmp_path: Path, capsys) -> None:
    add_broken(folder)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder), "--method", "lee", "--strict", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and err.count("\n") == 1
    assert not out.exists()


def test_strict_failure_while_denoising_removes_written_files(
    folder: Path, tmp_path: Path, monkeypatch
) -> None:
    """A file whose header reads but whose pixels do not: the files already written go."""
    import usdenoise.denoise.files as module

    real = module._denoise_one

    def failing(source, target, dicom_as, denoiser=None, **kwargs):
        if source.name == "b16.png":
            raise UsdenoiseError(f"{source}: pixel data is truncated")
        return real(source, target, dicom_as, denoiser, **kwargs)

    monkeypatch.setattr(module, "_denoise_one", failing)
    out = tmp_path / "out"
    with pytest.raises(UsdenoiseError, match="truncated"):
        denoise_files([folder], out_dir=out, method="lee", params={}, recursive=True, strict=True)
    assert not out.exists()  # a8.png was written first, then removed with its folder
    with pytest.warns(UserWarning, match="b16.png"):
        summary = denoise_files([folder], out_dir=out, method="lee", params={}, recursive=True)
    assert sorted(p.name for p in summary.written) == ["a8.png", "c.png"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--method", "nosuch"], "unknown method 'nosuch'"),
        (["--method", "lee", "--param", "nope=1"], "unknown parameter 'nope'"),
        (["--method", "lee", "--param", "window=2"], "window"),
        (["--method", "lee", "--param", "window=abc"], "window"),
        (["--method", "lee", "--dicom-as", "jpeg"], "--dicom-as"),
        (["--method", "lee", "--workers", "0"], "--workers"),
    ],
)
def test_bad_method_or_parameter(folder: Path, tmp_path: Path, capsys, extra, words) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_input_and_empty_folder(tmp_path: Path, capsys) -> None:
    assert run_cli(["denoise", str(tmp_path / "nope.png"), "--method", "lee",
                    "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(["denoise", str(tmp_path / "empty"), "--method", "lee",
                    "--out", str(tmp_path / "out")]) == 2
    assert "no supported images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_image_smaller_than_the_window(tmp_path: Path, capsys) -> None:
    small = write_pillow(tmp_path / "small.png", gradient(5, 6))
    out = tmp_path / "out"
    assert run_cli(["denoise", str(small), "--method", "lee", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "small.png: image 5x6 is smaller than the 7-pixel minimum of lee" in err
    assert not out.exists()
    # a smaller window works; in a folder, a too-small image is skipped like an unreadable one
    assert run_cli(["denoise", str(small), "--method", "lee", "--param", "window=5",
                    "--out", str(out)]) == 0
    with pytest.raises(UsdenoiseError, match="small.png: image 5x6"):
        denoise_files([tmp_path], out_dir=tmp_path.parent / "strict", method="lee",
                      params={}, strict=True)


def test_output_naming_helpers(tmp_path: Path) -> None:
    assert output_path(Path("a/b.dcm"), tmp_path, dicom_as="png") == tmp_path / "a" / "b.png"
    assert output_path(Path("b.dcm"), tmp_path, dicom_as="dicom") == tmp_path / "b.dcm"
    assert output_path(Path("b.png"), tmp_path, dicom_as="png") == tmp_path / "b.png"
    assert frame_paths(tmp_path / "c.png", 1) == [tmp_path / "c.png"]
    assert frame_paths(tmp_path / "c.png", 2) == [tmp_path / "c_0000.png", tmp_path / "c_0001.png"]


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="default model not shipped in this build")
def test_default_model_without_method(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder / "a8.png"), "--out", str(out)]) == 0
    assert png(out / "a8.png").shape == (24, 20)


@pytest.mark.skipif(WEIGHTS.is_file(), reason="the default model is shipped")
def test_default_model_missing_is_a_clear_error(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder / "a8.png"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "default" in err and "default.safetensors" in err and err.count("\n") == 1
    assert not out.exists()


# ---------------------------------------------------------------------------- layouts, exit codes


def test_metaimage_keeps_the_input_layout(tmp_path: Path) -> None:
    """A PSFHS `.mha` (one gray image stored as three equal planes) comes back as three
    planes, an RGB vector image as a vector image, a volume as a volume."""
    sitk = pytest.importorskip("SimpleITK")
    a = gradient(24, 20, bits=8, seed=5)
    cases = {
        "psfhs.mha": sitk.GetImageFromArray(np.stack([a, a, a])),
        "vector.mha": sitk.GetImageFromArray(np.stack([a, a, a], axis=-1), isVector=True),
        "cine.mha": sitk.GetImageFromArray(np.stack([a, a[::-1], a, a[:, ::-1], a])),
    }
    for name, img in cases.items():
        img.SetSpacing((0.3, 0.2) + ((1.0,) if img.GetDimension() == 3 else ()))
        sitk.WriteImage(img, str(tmp_path / name))
    out = tmp_path / "out"
    summary = denoise_files([tmp_path / n for n in cases], out_dir=out, method="lee", params={})
    assert sorted(p.name for p in summary.written) == sorted(cases)
    for name, img in cases.items():
        back = sitk.ReadImage(str(out / name))
        assert back.GetSize() == img.GetSize(), name
        assert back.GetNumberOfComponentsPerPixel() == img.GetNumberOfComponentsPerPixel()
        assert back.GetSpacing() == img.GetSpacing()
        assert sitk.GetArrayFromImage(back).dtype == np.uint8
    planes = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "psfhs.mha")))
    assert np.array_equal(planes[0], planes[1]) and np.array_equal(planes[0], planes[2])
    expected = lee(read_frames(tmp_path / "psfhs.mha"))[0, 0].numpy() * 255
    assert np.abs(planes[0] - expected).max() <= 0.5 + 1e-3


def test_every_input_failing_is_exit_code_2(folder: Path, tmp_path: Path, monkeypatch,
                                            capsys) -> None:
    import usdenoise.denoise.files as module

    def failing(source, target, dicom_as, denoiser=None, **kwargs):
        raise UsdenoiseError(f"{source}: pixel data is truncated")

    monkeypatch.setattr(module, "_denoise_one", failing)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder), "--method", "lee", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing denoised: all 2 input file(s) failed" in err and "truncated" in err
    assert "denoised 0 file(s)" not in err
    assert not out.exists()


def test_internal_error_is_exit_code_1_with_traceback_only_under_debug(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import usdenoise.denoise.files as module

    def broken(source, target, dicom_as, denoiser=None, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "_denoise_one", broken)
    args = ["denoise", str(folder / "a8.png"), "--method", "lee", "--out", str(tmp_path / "o")]
    assert run_cli(args) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err
    assert err.count("\n") == 1
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", *args])


def test_usage_error_is_exit_code_2(capsys) -> None:
    assert run_cli(["denoise", "--no-such-option"]) == 2


def test_threads_option(folder: Path, tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    out = tmp_path / "out"
    assert run_cli(["denoise", str(folder / "a8.png"), "--method", "lee", "--threads", "1",
                    "--out", str(out)]) == 0
    assert calls[-1] == 1
    calls.clear()
    assert run_cli(["denoise", str(folder / "b16.png"), "--method", "lee", "--out",
                    str(out)]) == 0
    from usdenoise.denoise.files import machine_threads

    assert calls and calls[-1] == machine_threads()  # default: the machine's cores
    assert run_cli(["denoise", str(folder), "--threads", "0", "--out", str(tmp_path / "x")]) == 2


def test_progress_counts_frames(tmp_path: Path, monkeypatch) -> None:
    """A cine DICOM advances the bar once per frame; the total is every frame of the run."""
    pytest.importorskip("pydicom")
    import usdenoise.denoise.files as module

    cine = np.stack([gradient(16, 16, bits=8, seed=s) for s in range(4)])
    source = write_dicom_file(tmp_path / "cine.dcm", cine)
    write_pillow(tmp_path / "one.png", gradient(16, 16, bits=8))
    seen: dict[str, float] = {"total": 0, "advanced": 0}
    real = module.make_progress

    def spy(**kwargs):
        progress = real(enabled=False)
        add, advance = progress.add_task, progress.advance

        def add_task(*args, total=None, **kw):
            seen["total"] = total
            return add(*args, total=total, **kw)

        def step(task, advance_by=1):
            seen["advanced"] += advance_by
            return advance(task, advance_by)

        progress.add_task, progress.advance = add_task, step
        return progress

    monkeypatch.setattr(module, "make_progress", spy)
    denoise_files([source, tmp_path / "one.png"], out_dir=tmp_path / "out", method="lee",
                  params={"window": 3})
    assert seen == {"total": 5, "advanced": 5}
