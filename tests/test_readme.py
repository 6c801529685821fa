"""The README's Python examples run as written (numpy in, numpy out; inside MONAI Compose)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_the_two_setup_commands_and_python_examples() -> None:
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[all]" && usdenoise demo' in text
    assert 'pip install -e ".[test]" && pytest -q' in text
    assert len(BLOCKS) >= 2


def test_readme_python_examples_run(capsys) -> None:
    pytest.importorskip("monai")
    namespace: dict = {}
    for block in BLOCKS:  # one after the other, as a reader pastes them
        exec(compile(block, str(README), "exec"), namespace)
    assert "(1, 256, 256)" in capsys.readouterr().out
