"""core: file transactions, seeds, the device resolver, the batch check and the blend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError, one_line
from usdenoise.core.files import (
    atomic_write,
    make_temp_file,
    staged_dir,
    staging_path,
    write_text_atomic,
)
from usdenoise.core.params import STRENGTH, Param, blend
from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.core.tensors import check_batch


def test_staged_dir_publishes_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_dir(out) as staging:
        assert staging == staging_path(out) and not out.exists()
        write_text_atomic(staging / "a.txt", "one")
    assert (out / "a.txt").read_text() == "one" and not staging_path(out).exists()
    with pytest.raises(RuntimeError), staged_dir(out) as staging:
        write_text_atomic(staging / "a.txt", "two")
        raise RuntimeError("fails half-way")
    assert (out / "a.txt").read_text() == "one"  # the earlier output is untouched
    assert not staging_path(out).exists()


def test_staged_dir_under_a_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsdenoiseError, match="cannot write there"), \
            staged_dir(tmp_path / "file" / "out"):
        pass


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    with pytest.raises(ValueError), atomic_write(target) as tmp:
        Path(tmp).write_text("half")
        raise ValueError
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_temp_files_get_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = make_temp_file(tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_seed_purposes_keep_their_integers() -> None:
    assert [p.value for p in SeedPurpose] == [0, 1, 2, 3, 4, 5]
    assert derive_seed(7, SeedPurpose.TRAIN_NOISE, 2) == derive_seed(7, 4, 2)
    assert derive_seed(7, 4, 2) != derive_seed(7, 4, 3)
    assert 0 <= derive_seed(1, 2) < 2**63


def test_auto_device() -> None:
    assert resolve_auto("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_auto(" CPU ") == "cpu"


def test_check_batch_messages() -> None:
    assert check_batch(torch.zeros(1, 1, 2, 2), "x") is not None
    with pytest.raises(UsdenoiseError, match=r"^x: expected a torch.Tensor"):
        check_batch(np.zeros((1, 1, 2, 2)), "x")
    with pytest.raises(UsdenoiseError, match=r"\[B, 1, H, W\] tensor, got shape \(1, 2, 2, 2\)"):
        check_batch(torch.zeros(1, 2, 2, 2), "x", channels=1)
    with pytest.raises(UsdenoiseError, match="float"):
        check_batch(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), "x")
    with pytest.raises(UsdenoiseError, match="empty"):
        check_batch(torch.zeros(0, 1, 2, 2), "x", nonempty=True)


def test_blend_and_strength() -> None:
    a, b = torch.ones(3), torch.zeros(3)
    assert torch.equal(blend(a, b, 0.25), torch.full((3,), 0.25))
    assert STRENGTH.coerce("0.5", owner="lee") == 0.5
    with pytest.raises(UsdenoiseError, match="above the maximum"):
        STRENGTH.coerce(2, owner="lee")
    assert Param("k", 3, "doc", int, low=1).coerce("4", owner="m") == 4


def test_one_line() -> None:
    assert one_line(ValueError("a\n  b")) == "a b" and one_line(ValueError()) == "ValueError"


def test_pixel_limit_is_checked_from_the_header() -> None:
    from usdenoise.core.limits import MAX_FRAME_PIXELS, check_pixels

    check_pixels("a.png", 540, 800, frames=120)
    with pytest.raises(UsdenoiseError, match=r"^big.mha: .*13500"):
        check_pixels("big.mha", 13_500, 13_500)
    assert MAX_FRAME_PIXELS == 50_000_000
