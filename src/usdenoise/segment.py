"""Old import path, kept so existing code works: use `usdenoise.segmentation.evaluate`."""

from usdenoise.metrics.geometry import fit_head_ellipse, head_circumference, largest_region  # noqa: F401
from usdenoise.metrics.segmentation import dice_per_class, image_metrics, iou_per_class  # noqa: F401
from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter  # noqa: F401
from usdenoise.segmentation.pipeline import InputPipeline  # noqa: F401
from usdenoise.segmentation.predict import overlay, predict  # noqa: F401
