"""usdenoise: speckle removal for ultrasound images and the downstream segmentation check."""

__version__ = "0.1.0"
