"""Data: image I/O, paired datasets and samplers, paired augmentation, GoPro-style tiling, synthetic blur."""

from nafft.data.io import (
    IMAGE_SUFFIXES,
    Image,
    ImageReadError,
    ImageWriteError,
    decode_image,
    image_to_tensor,
    list_images,
    read_image,
    tensor_to_image,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "Image",
    "ImageReadError",
    "ImageWriteError",
    "decode_image",
    "image_to_tensor",
    "list_images",
    "read_image",
    "tensor_to_image",
    "write_image",
]
