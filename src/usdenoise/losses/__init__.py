"""Training losses for denoisers, and the parser for combinations like "0.16*l1+0.84*msssim".

Every loss is an `nn.Module` called as `loss(pred, target) -> scalar tensor` on `[B,1,H,W]`
images in [0, 1]. All of them but `task` are 0 for identical images, positive otherwise,
differentiable, and *scale-aware*: they are means (independent of batch and image size) that
grow with the size of the error, on the fixed data range [0, 1].

- `l1`, `l2`: mean absolute / squared error.
- `ssim`: 1 - SSIM (Gaussian window sigma 1.5, 11 x 11, shrunk to the image on tiny inputs).
- `msssim`: 1 - MS-SSIM, via `usdenoise.metrics.ms_ssim`. Below 161 px on the smaller side
  five scales do not fit (pytorch-msssim refuses such images); there the largest number of
  scales m that fits is used, with the first m standard weights renormalised to sum to 1
  (m = 4 from 81 px, 3 from 41 px, 2 from 21 px, 1 = plain SSIM from 11 px; below 11 px the
  window shrinks).
- `perceptual`: mean squared difference of VGG16 features (relu1_2, relu2_2, relu3_3 by
  default), averaged over the layers; grayscale is repeated to 3 channels and ImageNet
  normalised. Needs a local VGG16 file (`vgg_weights=PATH`); nothing is downloaded.
- `task`, `taskperceptual` (task-aware losses, Liu et al., IJCAI 2018): through a frozen
  segmenter (`segmenter=` an `nn.Module`, or a run folder / .safetensors of kind
  "segmenter"). `task` is MONAI's Dice + cross-entropy of `segmenter(pred)` against the true
  mask (`mask=[B,H,W]` ints); it is not 0 for identical images, it measures how well the
  denoised image can still be segmented. `taskperceptual` is the mean squared difference of
  the segmenter's encoder features of pred and target (`models.segmenters.encoder_features`),
  averaged over levels; no ImageNet weights needed.

Registry design (`LOSSES`). Each class declares
  `requires`: names of resources `parse_loss` must hand to its constructor (the perceptual
      loss requires "vgg_weights"), taken from `parse_loss(..., **resources)`;
  `extra_inputs`: names of batch entries beyond (pred, target) that its `forward` takes as
      keyword arguments; `CombinedLoss.forward(pred, target, **batch)` passes each term only
      the entries it declares.
E.g. `parse_loss("l1+0.1*task", segmenter=net)` is called as `loss(pred, target, mask=mask)`.
"""

from usdenoise.losses.image import L1Loss, L2Loss, Loss, MSSSIMLoss, PerceptualLoss, SSIMLoss
from usdenoise.losses.parser import LOSSES, CombinedLoss, parse_loss
from usdenoise.losses.task import TaskLoss, TaskPerceptualLoss, frozen_segmenter

__all__ = [
    "LOSSES", "CombinedLoss", "L1Loss", "L2Loss", "Loss", "MSSSIMLoss", "PerceptualLoss",
    "SSIMLoss", "TaskLoss", "TaskPerceptualLoss", "frozen_segmenter", "parse_loss",
]
