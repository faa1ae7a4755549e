"""Inference: padded and tiled prediction of any image size, self-ensemble, checkpoint loading, export."""

from nafft.inference.loading import LoadedModel, load_for_inference, require_checkpoint, train_patch_size
from nafft.inference.predict import DeviceError, Predictor, estimate_memory, resolve_device, self_ensemble
from nafft.inference.tile_layout import TileLayout, axis_weights, tile_starts

__all__ = [
    "DeviceError",
    "LoadedModel",
    "Predictor",
    "TileLayout",
    "axis_weights",
    "estimate_memory",
    "load_for_inference",
    "require_checkpoint",
    "resolve_device",
    "self_ensemble",
    "tile_starts",
    "train_patch_size",
]
