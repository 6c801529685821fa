"""core.specs (the `name:argument` grammar) and core.progress."""

from __future__ import annotations

import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.progress import make_progress, track
from usdenoise.core.specs import parse_level_range, parse_number, split_spec


def test_specs() -> None:
    assert split_spec(" Rayleigh:0.25 ", what="noise") == ("rayleigh", "0.25")
    assert split_spec("phantom", what="data") == ("phantom", None)
    assert parse_level_range("0.1-0.75", what="noise") == (0.1, 0.75)
    assert parse_level_range("0.3", what="noise") == (0.3, 0.3)
    with pytest.raises(UsdenoiseError, match="runs backwards"):
        parse_level_range("0.7-0.1", what="noise")
    with pytest.raises(UsdenoiseError, match="not a finite number"):
        parse_number("nan", what="level")
    with pytest.raises(UsdenoiseError, match="missing name"):
        split_spec(":3", what="noise")


def test_track_yields_everything_and_progress_can_be_silent() -> None:
    assert list(track(range(5), description="x")) == [0, 1, 2, 3, 4]
    with make_progress(enabled=False) as bar:
        task = bar.add_task("t", total=2)
        bar.advance(task)
