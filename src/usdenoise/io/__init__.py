"""Image files <-> float32 tensors in [0, 1]: Pillow formats, .npy, MetaImage and DICOM.

The codecs live in one module each (`pillow`, `npy`, `metaimage`, `dicom`); `images`
dispatches on the file suffix. Every problem with a file is a one-line `UsdenoiseError`
naming the file.
"""

from usdenoise.core.files import atomic_write, make_temp_file
from usdenoise.io.common import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    LUMA_WEIGHTS,
    METAIMAGE_SUFFIXES,
    PILLOW_SUFFIXES,
    Decoded,
    ImageInfo,
    check_input_file,
)
from usdenoise.io.dicom import write_dicom
from usdenoise.io.images import (
    READERS,
    WRITERS,
    decode,
    image_info,
    read_frames,
    read_image,
    read_mask,
    read_raw,
    to_tensor,
    write_image,
    write_mask,
)

__all__ = [
    "DICOM_SUFFIXES", "IMAGE_SUFFIXES", "LUMA_WEIGHTS", "METAIMAGE_SUFFIXES", "PILLOW_SUFFIXES",
    "READERS", "WRITERS", "Decoded", "ImageInfo", "atomic_write", "check_input_file", "decode",
    "image_info", "make_temp_file", "read_frames", "read_image", "read_mask",
    "read_raw", "to_tensor", "write_dicom", "write_image", "write_mask",
]
