"""Data: image I/O, paired datasets and samplers, paired augmentation, GoPro-style tiling, synthetic blur."""

from nafft.data.datasets import (
    DatasetError,
    PairedEvalDataset,
    PairedTrainDataset,
    SampleSampler,
    batch_sample_numbers,
    load_pairs,
)
from nafft.data.gopro_crops import TilingError, prepare_tiles, tile_boxes, tile_offsets
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
from nafft.data.pair_folders import Pair, PairingError, find_pairs, gather_pairs, scan_pairs
from nafft.data.synth import SynthError, SynthSettings, make_pair, synthesize_pairs

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetError",
    "Image",
    "ImageReadError",
    "ImageWriteError",
    "Pair",
    "PairedEvalDataset",
    "PairedTrainDataset",
    "PairingError",
    "SampleSampler",
    "SynthError",
    "SynthSettings",
    "TilingError",
    "batch_sample_numbers",
    "decode_image",
    "find_pairs",
    "gather_pairs",
    "image_to_tensor",
    "list_images",
    "load_pairs",
    "make_pair",
    "prepare_tiles",
    "read_image",
    "scan_pairs",
    "synthesize_pairs",
    "tensor_to_image",
    "tile_boxes",
    "tile_offsets",
    "write_image",
]
