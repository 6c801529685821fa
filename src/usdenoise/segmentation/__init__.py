"""Segmentation of the fetal head: input processing (`pipeline`), prediction and overlays
(`predict`), post-processing, class mapping across data sets, and `segment evaluate`."""

from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter
from usdenoise.segmentation.pipeline import InputPipeline
from usdenoise.segmentation.predict import overlay, predict

__all__ = ["InputPipeline", "SegmentEvaluation", "evaluate_segmenter", "overlay", "predict"]
