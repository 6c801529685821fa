"""What every command shares: -h/-V, shell completion, shown defaults, no `--no-no-` flags,
--device where torch computes, one meaning for --model (old spellings kept, with a note)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from cli_helpers import run_cli

import usdenoise.denoise.benchmark as benchmark
import usdenoise.segmentation.evaluate as segment_evaluate
import usdenoise.training.loop as loop
from usdenoise import __version__
from usdenoise.cli.app import app
from usdenoise.cli.options import NO_DEVICE, network_device
from usdenoise.denoise.network import default_weights_path

# commands that do no torch work at all (listing, rebuilding a report page)
NOTHING_TO_COMPUTE = {"list", "report"}


def _commands():
    """(path words, click command, context) of every command, groups included."""
    root = typer.main.get_command(app)

    def walk(command, path, parent):
        ctx = command.context_class(command, info_name=path[-1], parent=parent)
        yield path, command, ctx
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name], ctx)

    return list(walk(root, ["usdenoise"], None))


def _leaves():
    return [(path, command) for path, command, _ in _commands()
            if not getattr(command, "commands", None)]


def test_every_command_has_short_and_long_help(capsys) -> None:
    for path, _, _ in _commands():
        for flag in ("-h", "--help"):
            code, out, err = run_cli(capsys, *path[1:], flag)
            assert code == 0, (path, flag, err)
            assert "Usage:" in out and f"{' '.join(path)}" in out, (path, flag)


def test_version_short_and_long(capsys) -> None:
    for flag in ("-V", "--version"):
        code, out, _ = run_cli(capsys, flag)
        assert (code, out.strip()) == (0, f"usdenoise {__version__}")


def test_show_completion_for_a_named_shell(capsys) -> None:
    code, out, _ = run_cli(capsys, "--show-completion", "bash")
    assert code == 0
    assert "_USDENOISE_COMPLETE=complete_bash" in out
    assert "complete -o default -F _usdenoise_completion usdenoise" in out
    code, out, _ = run_cli(capsys, "--show-completion=zsh")
    assert code == 0 and "#compdef usdenoise" in out and "complete_zsh" in out
    code, out, err = run_cli(capsys, "--show-completion", "tcsh")
    assert code == 2 and out == "" and err.count("\n") == 1 and "tcsh" in err
    code, _, err = run_cli(capsys, "--install-completion", "zsh")  # typer's takes no name
    assert code == 2 and "--show-completion SHELL" in err and err.count("\n") == 1


def test_completion_protocol_completes_commands_and_hides_old_spellings(
        capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def complete(words: str) -> list[str]:
        monkeypatch.setenv("_USDENOISE_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - 1))
        code, out, err = run_cli(capsys)
        assert code == 0, err
        return out.split()

    assert complete("usdenoise seg") == ["segment"]
    assert "--segmenter" in complete("usdenoise segment evaluate --")
    assert "--model" not in complete("usdenoise segment evaluate --mo")  # hidden alias
    assert complete("usdenoise train --arch-p") == ["--arch-param"]


def test_show_completion_as_a_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "usdenoise", "--show-completion", "bash"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "_usdenoise_completion" in proc.stdout and proc.stderr == ""


def test_defaults_are_shown_and_no_double_negative_flags() -> None:
    checked = 0
    for path, command, ctx in _commands():
        for param in command.params:
            names = [*param.opts, *param.secondary_opts]
            assert not any(n.startswith("--no-no-") for n in names), (path, names)
            if param.hidden or param.default is None or param.default in ([], ()):
                continue
            if getattr(param, "is_flag", False) and not param.secondary_opts:
                continue  # a plain switch such as --no-reference is off unless given
            record = param.get_help_record(ctx)
            assert record is not None and "[default: " in record[1], (path, names, record)
            checked += 1
    assert checked > 40  # the walk reached the commands' options


def test_help_shows_a_default(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per option
    _, out, _ = run_cli(capsys, "evaluate", "-h")
    line = next(line for line in out.splitlines() if "--noise " in line)
    assert "[default: rayleigh:0.1,0.25,0.5,0.75]" in line


def test_device_on_every_command_that_computes() -> None:
    without = {path[-1] for path, command in _leaves()
               if not any(p.name == "device" for p in command.params)}
    assert without == NOTHING_TO_COMPUTE | NO_DEVICE


def test_network_device_only_for_networks() -> None:
    assert network_device("default", {}, "cpu") == {"device": "cpu"}
    assert network_device("network", {"checkpoint": "x"}, "cpu") == {"checkpoint": "x",
                                                                    "device": "cpu"}
    assert network_device("lee", {"window": "5"}, "cuda") == {"window": "5"}
    assert network_device("default", {"device": "cpu"}, "cuda") == {"device": "cpu"}
    assert network_device("no_such_method", {}, "cpu") == {}


@pytest.mark.skipif(not default_weights_path().is_file(), reason="no shipped default model")
def test_denoise_device_reaches_the_network(tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8)).save(
        tmp_path / "a.png")
    code, _, err = run_cli(capsys, "denoise", tmp_path / "a.png", "--out", tmp_path / "o",
                           "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "o" / "a.png").is_file()
    code, _, err = run_cli(capsys, "denoise", tmp_path / "a.png", "--out", tmp_path / "l",
                           "--method", "lee", "--device", "cuda")  # filters run on the CPU
    assert code == 0, err
    import torch

    if not torch.cuda.is_available():
        code, _, err = run_cli(capsys, "denoise", tmp_path / "a.png", "--out", tmp_path / "g",
                               "--device", "cuda")
        assert code == 2 and "no CUDA GPU" in err and not (tmp_path / "g").exists()


def _capture(monkeypatch: pytest.MonkeyPatch, module, name: str, result) -> list:
    seen: list = []

    def fake(settings, *args, **kwargs):
        seen.append(settings)
        return result

    monkeypatch.setattr(module, name, fake)
    return seen


def test_evaluate_includes_the_shipped_model_by_default(tmp_path: Path, capsys,
                                                        monkeypatch) -> None:
    seen = _capture(monkeypatch, benchmark, "evaluate", [])
    code, _, err = run_cli(capsys, "evaluate", "--out", tmp_path / "e", "--device", "cpu")
    assert code == 0, err
    methods = {m.name: m.params for m in seen[0].methods}
    assert list(methods) == ["noisy", "default", "bm3d", "nlm", "lee", "srad", "median"]
    assert methods["default"] == {"device": "cpu"} and methods["lee"] == {}
    code, _, err = run_cli(capsys, "evaluate", "--methods", "lee", "--out", tmp_path / "e")
    assert code == 0, err
    assert [m.name for m in seen[1].methods] == ["noisy", "lee"]  # as given


def test_evaluate_empty_test_split_is_an_error(tmp_path: Path, capsys) -> None:
    out = tmp_path / "e"
    code, _, err = run_cli(capsys, "evaluate", "phantom:2", "--methods", "median", "--size",
                           "32", "--noise", "rayleigh:0.5", "--strengths", "none", "--out", out)
    assert code == 2 and err.count("\n") == 1, err
    assert "phantom:2: the test split is empty" in err and "--split all" in err
    assert not out.exists()
    code, _, err = run_cli(capsys, "evaluate", "phantom:2", "--methods", "median", "--size",
                           "32", "--noise", "rayleigh:0.5", "--strengths", "none", "--split",
                           "all", "--examples", "0", "--out", out)
    assert code == 0, err


def test_segment_evaluate_segmenter_and_its_old_spelling(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    seen = _capture(monkeypatch, segment_evaluate, "evaluate_segmenter", ([], None))
    run = tmp_path / "seg"
    code, _, err = run_cli(capsys, "segment", "evaluate", "--segmenter", run, "--out",
                           tmp_path / "a")
    assert code == 0 and "deprecated" not in err, err
    code, _, err = run_cli(capsys, "segment", "evaluate", "--model", run, "--out",
                           tmp_path / "b")
    assert code == 0
    assert err.splitlines()[0] == ("usdenoise: note: segment evaluate --model is deprecated; "
                                   "use --segmenter")
    assert seen[0].model == seen[1].model == str(run)
    code, _, err = run_cli(capsys, "segment", "evaluate", "--out", tmp_path / "c")
    assert code == 2 and "--segmenter RUN" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "segment", "evaluate", "--segmenter", run, "--model", run,
                           "--out", tmp_path / "d")
    assert code == 2 and "not both" in err.splitlines()[-1]


def test_train_arch_param_and_its_old_spelling(tmp_path: Path, capsys, monkeypatch) -> None:
    seen = _capture(monkeypatch, loop, "fit", tmp_path / "run" / "model_best.safetensors")
    common = ["train", "phantom:4", "--arch", "dncnn", "--out", tmp_path / "run"]
    code, _, err = run_cli(capsys, *common, "--arch-param", "channels=4", "--arch-param",
                           "depth=2")
    assert code == 0 and "deprecated" not in err, err
    code, _, err = run_cli(capsys, *common, "--model-param", "channels=4", "--model-param",
                           "depth=2")
    assert code == 0, err
    assert "usdenoise: note: train --model-param is deprecated; use --arch-param" in err
    assert seen[0].model == seen[1].model == {"channels": 4, "depth": 2}


@pytest.mark.skipif(not default_weights_path().is_file(), reason="no shipped default model")
def test_segment_train_denoise_model_and_old_spellings(tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    seen = _capture(monkeypatch, loop, "fit", tmp_path / "run" / "model_best.safetensors")
    weights = default_weights_path()
    common = ["segment", "train", "phantom:4", "--arch", "segnet", "--out", tmp_path / "run"]
    code, _, err = run_cli(capsys, *common, "--denoise-model", weights, "--arch-param",
                           "channels=4,8")
    assert code == 0 and "deprecated" not in err, err
    code, _, err = run_cli(capsys, *common, "--model", weights, "--model-param", "channels=4,8")
    assert code == 0, err
    notes = [line for line in err.splitlines() if "deprecated" in line]
    assert notes == ["usdenoise: note: segment train --model is deprecated; use --denoise-model",
                     "usdenoise: note: segment train --model-param is deprecated; use "
                     "--arch-param"]
    for field in ("denoise", "denoise_params", "model"):
        assert getattr(seen[0], field) == getattr(seen[1], field), field
    assert seen[0].denoise == "network" and seen[0].denoise_params["checkpoint"] == str(weights)


def test_segment_evaluate_and_study_empty_test_split_are_errors(tmp_path: Path, capsys) -> None:
    from usdenoise.checkpoint import save_model
    from usdenoise.models.segmenters import build_segmenter

    net = build_segmenter("segnet", "fast", channels=[4, 4, 4])
    save_model(tmp_path / "seg" / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter", meta={"class_names": ["background", "head"], "image_size": 32})
    code, _, err = run_cli(capsys, "segment", "evaluate", "phantom:2", "--segmenter",
                           tmp_path / "seg", "--out", tmp_path / "e", "--device", "cpu")
    assert code == 2 and err.count("\n") == 1, err
    assert "phantom:2: the test split is empty" in err and not (tmp_path / "e").exists()
    code, _, err = run_cli(capsys, "study", "phantom:2", "--quick", "--out", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1, err
    assert "phantom:2: the test split is empty" in err and not (tmp_path / "s").exists()


def test_closed_output_pipe_ends_quietly() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: `usdenoise ... | head`
    try:
        proc = subprocess.run([sys.executable, "-m", "usdenoise", "--show-completion", "bash"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""


def test_messages_name_the_new_spellings(tmp_path: Path, capsys) -> None:
    # a denoiser given as --segmenter: tests/segmentation/test_segment_evaluate.py
    for command, option in (("train", "--arch-param"), ("study", "--segmenter-param"),
                            ("study", "--denoiser-param")):
        code, _, err = run_cli(capsys, command, option, "channels", "--out", tmp_path / "o")
        assert code == 2 and f"{option} 'channels': expected key=value" in err, err
        assert not (tmp_path / "o").exists()


def test_the_manual_teaches_the_new_spellings() -> None:
    root = Path(__file__).resolve().parents[2]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for page in pages:
        if page.name == "cli.md":  # its table of renamed options names the old ones
            continue
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{page.name}:{number}"
            assert "--model-param" not in line, where
            if "segment evaluate" in line or "segment train" in line:
                assert "--model " not in line and "--model`" not in line, where


def test_warnings_are_one_line_without_source_paths(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(40, 200, (32, 32), dtype=np.uint8)).save(folder / "a.png")
    # a real process: pytest records warnings itself, so their printed form shows only here
    result = subprocess.run(
        [sys.executable, "-m", "usdenoise", "denoise", str(folder), "--out",
         str(tmp_path / "out"), "--method", "default", "--param", "level=5", "--threads", "1"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warned = [line for line in lines if "outside the trained range" in line]
    assert len(warned) == 1 and re.fullmatch(
        r"usdenoise: warning: default: speckle level 5 is outside the trained range "
        r"\[[0-9.]+, [0-9.]+\]; clamped", warned[0]), warned
    assert lines[-1].startswith("denoised 1 file(s)")  # nothing else: no source line
    assert ".py:" not in result.stderr and "UserWarning" not in result.stderr


def test_warnings_keep_their_python_form_after_the_command(capsys) -> None:
    import warnings

    run_cli(capsys, "list")
    assert warnings.formatwarning.__name__ == "formatwarning"  # restored
