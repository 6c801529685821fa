"""The command line's error contract: one line, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from usdenoise.cli.app import main


def test_version_prints(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "usdenoise" in capsys.readouterr().out


def test_list_shows_denoisers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list"])
    assert exit_info.value.code == 0
    assert "noisy" in capsys.readouterr().out


def test_module_entry_point_and_unknown_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "usdenoise", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_data_help_is_one_text_for_every_command() -> None:
    from usdenoise.cli.options import DATA_HELP
    from usdenoise.cli.study import study_command

    assert "folder:PATH" in DATA_HELP
    assert study_command.__name__ == "study_command"
