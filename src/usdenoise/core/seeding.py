"""Seeds derived per purpose, so each kind of randomness has its own reproducible stream.

`derive_seed(seed, purpose, ...)` mixes the user's seed with a purpose and indices (epoch,
image index, rank) through NumPy's SeedSequence. The purposes keep the integer values they
had before they were named, so seeds written by earlier versions reproduce.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class SeedPurpose(IntEnum):
    TRAIN_CROP = 0  # random crops and flips of a training image, per epoch
    VALIDATION_CROP = 1  # the fixed crop of a validation image
    VALIDATION_NOISE = 2  # the fixed speckle of a validation image
    WEIGHTS = 3  # weight init / dropout stream per epoch and rank
    TRAIN_NOISE = 4  # speckle of the training batches, per epoch
    SEGMENT_INPUT_NOISE = 5  # speckle added to a segmentation input image


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from a tuple of integers (seed, purpose, epoch, index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)
