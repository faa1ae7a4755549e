"""Inference: an opened model, padded and tiled prediction of any image size, self-ensemble, deblurring files,
export."""

from nafft.inference.opened_model import (
    DeviceError,
    OpenedModel,
    load_default_model,
    open_model,
    resolve_device,
    train_patch_size,
)
from nafft.inference.predict import Predictor, estimate_memory, self_ensemble
from nafft.inference.tile_layout import TileLayout, axis_weights, tile_starts

__all__ = [
    "DeviceError",
    "OpenedModel",
    "Predictor",
    "TileLayout",
    "axis_weights",
    "estimate_memory",
    "load_default_model",
    "open_model",
    "resolve_device",
    "self_ensemble",
    "tile_starts",
    "train_patch_size",
]
