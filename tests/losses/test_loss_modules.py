"""losses.image and losses.task on their own: the input check and the frozen segmenter."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.losses.image import L1Loss, check_pair
from usdenoise.losses.task import TaskLoss, frozen_segmenter
from usdenoise.models.segmenters import build_segmenter


def test_check_pair_names_the_loss() -> None:
    with pytest.raises(UsdenoiseError, match=r"^loss l1: pred: expected a \[B, C, H, W\]"):
        check_pair(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), "l1")
    with pytest.raises(UsdenoiseError, match="same shape"):
        check_pair(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), "l1")
    assert float(L1Loss()(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))) == 1.0


def test_frozen_segmenter_is_frozen_in_eval_mode() -> None:
    net = build_segmenter("segnet", "fast", num_classes=2, channels=[4, 8])
    model, classes = frozen_segmenter(net, loss="task")
    assert model is net and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    loss = TaskLoss(segmenter=net)
    loss.train()
    assert not loss.segmenter.training  # stays in eval mode inside a training loss
    with pytest.raises(UsdenoiseError, match="needs a frozen segmenter"):
        frozen_segmenter(None, loss="task")
