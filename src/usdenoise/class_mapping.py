"""Old import path, kept so existing code works: use `usdenoise.segmentation.class_mapping`."""

from usdenoise.segmentation.class_mapping import ClassMapping, map_classes  # noqa: F401
