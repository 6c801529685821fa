"""Image quality (`image`), segmentation (`segmentation`), head geometry (`geometry`) and
statistics (`stats`). Pure functions of tensors and arrays; nothing here reads files."""

from usdenoise.metrics.image import (
    METRICS,
    MS_SSIM_WEIGHTS,
    Metric,
    box_mask,
    cnr,
    enl,
    epi,
    gcnr,
    head_background_rois,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    ssi,
    ssim,
)

__all__ = [
    "METRICS", "MS_SSIM_WEIGHTS", "Metric", "box_mask", "cnr", "enl", "epi", "gcnr",
    "head_background_rois", "ms_ssim", "ms_ssim_scales", "psnr", "ssi", "ssim",
]
