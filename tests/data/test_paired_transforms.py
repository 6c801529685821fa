"""Paired transforms: one draw for image and mask, masks only nearest neighbour."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.transforms import (
    Compose,
    RandomCrop,
    RandomFlip,
    Resize,
    resize_image,
    resize_mask,
    resize_sample,
)


def _sample(h=40, w=60, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, h, w, generator=g)
    mask = torch.randint(0, classes, (h, w), generator=g)
    return {"image": image, "mask": mask, "id": "x", "spacing_mm": (0.2, 0.1)}


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40), oh=st.integers(1, 70), ow=st.integers(1, 70),
       values=st.lists(st.integers(0, 1000), min_size=1, max_size=5), seed=st.integers(0, 99))
def test_resized_mask_holds_only_original_values(h, w, oh, ow, values, seed):
    rng = np.random.default_rng(seed)
    mask = torch.from_numpy(rng.choice(values, size=(h, w)).astype(np.int64))
    out = resize_mask(mask, (oh, ow))
    assert out.shape == (oh, ow) and out.dtype == torch.int64
    assert set(out.unique().tolist()) <= set(mask.unique().tolist())


def test_mask_resize_matches_opencv_nearest_exact_on_integer_factors():
    mask = torch.randint(0, 5, (30, 20))
    up = resize_mask(mask, (60, 40))
    assert torch.equal(up, mask.repeat_interleave(2, 0).repeat_interleave(2, 1))
    down = resize_mask(up, (30, 20))
    assert torch.equal(down, mask)
    # same as PyTorch's pixel-centre nearest ("nearest-exact") on a non-integer factor
    ref = torch.nn.functional.interpolate(mask[None, None].float(), size=(23, 17),
                                          mode="nearest-exact")[0, 0].long()
    assert torch.equal(resize_mask(mask, (23, 17)), ref)


def test_image_resize_is_area_when_shrinking_and_bilinear_when_enlarging():
    x = torch.rand(1, 32, 48)
    down = resize_image(x, (16, 24))
    block_mean = x.reshape(1, 16, 2, 24, 2).mean((2, 4))
    assert torch.allclose(down, block_mean, atol=1e-6)
    up = resize_image(x, (50, 70))
    ref = cv2.resize(x[0].numpy(), (70, 50), interpolation=cv2.INTER_LINEAR)
    assert np.allclose(up[0].numpy(), ref, atol=1e-6)
    mixed = resize_image(x, (16, 70))  # shrink rows, enlarge columns
    assert mixed.shape == (1, 16, 70) and 0 <= mixed.min() and mixed.max() <= 1
    assert torch.allclose(resize_image(torch.full((1, 9, 13), 0.3), (20, 5)),
                          torch.full((1, 20, 5), 0.3), atol=1e-6)


def test_resize_scales_spacing_so_lengths_are_kept():
    s = resize_sample(_sample(40, 60), (20, 120))
    assert s["image"].shape == (1, 20, 120) and s["mask"].shape == (20, 120)
    assert s["spacing_mm"] == pytest.approx((0.4, 0.05))
    assert Resize(40)(_sample(40, 40))["spacing_mm"] == (0.2, 0.1)  # unchanged size


def test_crop_and_flip_use_one_draw_for_image_and_mask():
    # image == mask as float: any mismatch between the two would show
    mask = torch.arange(40 * 60).reshape(40, 60)
    sample = {"image": mask[None].float(), "mask": mask}
    t = Compose([RandomCrop((17, 23)), RandomFlip(0.5, p_vertical=0.5)])
    seen = set()
    for seed in range(12):
        out = t(sample, generator=torch.Generator().manual_seed(seed))
        assert out["image"].shape == (1, 17, 23)
        assert torch.equal(out["image"][0].long(), out["mask"])
        seen.add(int(out["mask"][0, 0]))
    assert len(seen) > 3  # the crop position really is random


def test_same_generator_seed_same_result():
    t = Compose([RandomCrop(16), RandomFlip()])
    a = t(_sample(), generator=torch.Generator().manual_seed(3))
    b = t(_sample(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_flip_probabilities():
    sample = _sample()
    never = RandomFlip(0.0)(sample, generator=torch.Generator().manual_seed(0))
    assert torch.equal(never["image"], sample["image"])
    always = RandomFlip(1.0)(sample, generator=torch.Generator().manual_seed(0))
    assert torch.equal(always["mask"], sample["mask"].flip(-1))
    with pytest.raises(UsdenoiseError, match="p=1.5"):
        RandomFlip(1.5)


def test_crop_pads_small_images_with_background():
    s = RandomCrop(50)(_sample(40, 30, classes=2), generator=torch.Generator().manual_seed(0))
    assert s["image"].shape == (1, 50, 50) and s["mask"][40:].sum() == 0
    with pytest.raises(UsdenoiseError, match="smaller than the crop"):
        RandomCrop(50, pad_if_needed=False)(_sample(40, 30))


def test_image_mask_size_mismatch_and_bad_size():
    sample = _sample()
    sample["mask"] = sample["mask"][:-1]
    with pytest.raises(UsdenoiseError, match="mask is"):
        Resize(8)(sample)
    with pytest.raises(UsdenoiseError, match="size"):
        Resize(0)
