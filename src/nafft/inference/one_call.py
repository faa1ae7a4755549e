"""`nafft.deblur(image)`: one call that deblurs a PIL image, a numpy array, a torch tensor or an image file.

The result is the same kind of thing, with the same size, mode or dtype and alpha, and its pixels are those `nafft
deblur` writes for the same file: the same decoding (a file's EXIF orientation applied), the same prediction
(`Predictor`: tiling, TLC, strength) and the same one rounding (`nafft.inference.deblur.output_pixels`). Gray stays
gray (the mean of the model's three output channels) and an alpha channel is carried over untouched.

Models are opened once per process and kept (the last few, by source, file time, device and TLC), so calling
`nafft.deblur` in a loop does not read the weights again.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from nafft.data.io import decode_with_metadata, image_to_tensor
from nafft.errors import UserError
from nafft.inference.deblur import output_pixels
from nafft.inference.opened_model import OpenedModel, open_model, resolve_device
from nafft.inference.predict import DEFAULT_STRENGTH, Predictor

# 16-bit gray as Pillow names it; other PIL modes without a direct array form are converted (see `_from_pil`).
_PIL_GRAY16 = ("I;16", "I;16B", "I;16L", "I;16N")
_PIL_KEPT = ("L", "LA", "RGB", "RGBA")


def deblur(
    image: Any,
    *,
    model: str | os.PathLike | OpenedModel | nn.Module | None = None,
    strength: float | str = DEFAULT_STRENGTH,
    device: str | torch.device = "auto",
    tlc: bool = True,
    tile: int | None = None,
    overlap: int | None = None,
    self_ensemble: bool = False,
    half: bool = False,
    memory_budget: int | None = None,
) -> Any:
    """Deblur one image (or a batch of tensors) and return it in the form it came in.

        import nafft
        from PIL import Image

        sharp = nafft.deblur(Image.open("photo.jpg"))          # a PIL image, same mode and size
        sharp = nafft.deblur(array, strength=0.7)              # numpy (H, W[, 3|4]) uint8/uint16/float in [0, 1]
        sharp = nafft.deblur("scan16.png", model="runs/x/checkpoints/best.safetensors")  # numpy, 16-bit

    Args:
        image: a PIL image (L, LA, RGB, RGBA, 16-bit gray; palette, 1-bit and CMYK come back as L, RGB or RGBA); a
            numpy array (H, W), (H, W, 2) gray + alpha, (H, W, 3) or (H, W, 4) of uint8, uint16 or floats in
            [0, 1]; a torch tensor (C, H, W) or (B, C, H, W) with C 1, 3 or 4, uint8 or floats in [0, 1], on any
            device; or the path of an image file (returned as a numpy array of the file's bit depth, upright).
            A PIL image is taken as stored, and its `info` (ICC profile, EXIF...) is copied to the result.
        model: a bundled model's name (`nafft models`), a weight file (nafft safetensors or an official NAFNet
            `.pth`), an opened model (`nafft.open_model`) or a network in memory; None: the bundled default model.
        strength: how much of the restoration to apply, 0..1 (1: all of it; 0: the input's pixels), or "auto" (the
            default): the model's guard chooses it for the image (`nafft.inference.guard`; 1 for a model without
            a guard).
        device: where to open a model given by name or file: "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
        tlc: TLC local pooling, as the model was trained (opening by name or file only).
        tile, overlap, self_ensemble, half, memory_budget: as `nafft deblur --tile ...` (`Predictor`).

    Returns:
        The deblurred image, of the kind, size, mode or dtype (and device) of `image`. Integer pixels are rounded
        once; floats are clipped to [0, 1] and not rounded.

    Raises:
        UserError: an unreadable file, an image kind, shape, dtype or value range that is not supported, a model
            that cannot be opened, or an option out of its range; one line that says which.
    """
    opened = _resolve_model(model, device, tlc)
    predictor = Predictor(opened, tile=tile, overlap=overlap, self_ensemble=self_ensemble, half=half,
                          memory_budget=memory_budget, strength=strength)
    if isinstance(image, str | os.PathLike):
        rgb, alpha, bit_depth, metadata = decode_with_metadata(image)
        return _join(_restore(rgb, predictor, bit_depth, metadata.gray), alpha, metadata.gray)
    if isinstance(image, np.ndarray):
        return _deblur_array(image, predictor)
    if isinstance(image, torch.Tensor):
        return _deblur_tensor(image, predictor)
    if isinstance(image, PILImage.Image):
        return _deblur_pil(image, predictor)
    raise UserError(
        f"nafft.deblur: cannot deblur a {type(image).__name__}; give a PIL image, a numpy array, a torch tensor or "
        "the path of an image file"
    )


def _resolve_model(model: Any, device: str | torch.device, tlc: bool) -> OpenedModel:
    if isinstance(model, OpenedModel):
        return model
    if isinstance(model, nn.Module):
        return OpenedModel.from_network(model, device=device)
    if model is not None and not isinstance(model, str | os.PathLike):
        raise UserError(f"nafft.deblur: model= takes a bundled model's name, a weight file, an opened model or a "
                        f"network, not a {type(model).__name__}")
    source = None if model is None else str(model)
    stamp = None
    if source is not None and Path(source).is_file():
        stat = Path(source).stat()
        stamp = (str(Path(source).resolve()), stat.st_mtime_ns, stat.st_size)
    opened = _open_cached(source, stamp, resolve_device(device), tlc)
    if not opened.trained:
        raise UserError(f"nafft.deblur: model={source!r} is a preset with untrained weights; give a weight file or a "
                        "bundled model (`nafft models`)")
    return opened


@functools.lru_cache(maxsize=4)
def _open_cached(source: str | None, stamp: tuple | None, device: torch.device, tlc: bool) -> OpenedModel:
    """`open_model`, once per source (and file version), device and TLC choice."""
    return open_model(source, device=device, tlc=tlc)


def _restore(rgb: np.ndarray, predictor: Predictor, bit_depth: int | None, gray: bool) -> np.ndarray:
    """(H, W, 3) integer or float pixels -> the restored (H, W, 3), or (H, W, 1) for gray, as `nafft deblur`."""
    x = image_to_tensor(rgb)
    pred = predictor(x)
    del x
    return output_pixels(pred, bit_depth, gray)


def _join(colour: np.ndarray, alpha: np.ndarray | None, gray: bool) -> np.ndarray:
    """(H, W, 3|1) colour and an optional (H, W) alpha -> (H, W, 3|4), or (H, W) / (H, W, 2) for gray."""
    if alpha is not None:
        return np.concatenate([colour, alpha[..., None].astype(colour.dtype, copy=False)], axis=-1)
    return colour[..., 0] if gray else colour


def _check_dtype(dtype: np.dtype, what: str) -> int | None:
    """The bit depth of integer pixels (None for floats), or a UserError for any other dtype."""
    if dtype == np.uint8:
        return 8
    if dtype == np.uint16:
        return 16
    if np.issubdtype(dtype, np.floating):
        return None
    raise UserError(f"nafft.deblur: {what} of {dtype} pixels; give uint8, uint16 or floats in [0, 1]")


def _check_range(array: np.ndarray) -> None:
    if not array.size:
        return
    if np.isnan(array).any():
        raise UserError("nafft.deblur: float pixels contain NaN")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise UserError(f"nafft.deblur: float pixels must lie in [0, 1], these span {low:g}..{high:g} (8-bit values "
                        "as floats: divide by 255)")


def _deblur_array(array: np.ndarray, predictor: Predictor) -> np.ndarray:
    """An (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) array, restored in its dtype."""
    shape = array.shape
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4) or 0 in array.shape:
        raise UserError(f"nafft.deblur: an array of shape {shape}; give (H, W), (H, W, 2), (H, W, 3) or (H, W, 4)")
    bit_depth = _check_dtype(array.dtype, "an array")
    if bit_depth is None:
        _check_range(array)
    channels = array.shape[-1]
    gray = channels <= 2
    colour = array[..., :1] if gray else array[..., :3]
    alpha = array[..., -1] if channels in (2, 4) else None
    rgb = np.repeat(colour, 3, axis=-1) if gray else colour
    restored = _restore(rgb, predictor, bit_depth, gray)
    out = _join(restored.astype(array.dtype, copy=False), alpha, gray)
    return out.reshape(shape)


def _deblur_tensor(tensor: torch.Tensor, predictor: Predictor) -> torch.Tensor:
    """A (C, H, W) or (B, C, H, W) tensor (C 1, 3 or 4), restored in its dtype on its device; batches image by
    image, as separate files would be."""
    if tensor.ndim not in (3, 4) or tensor.shape[-3] not in (1, 3, 4):
        raise UserError(f"nafft.deblur: a tensor of shape {tuple(tensor.shape)}; give (C, H, W) or (B, C, H, W) "
                        "with C = 1, 3 or 4")
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        raise UserError(f"nafft.deblur: a tensor of {tensor.dtype} pixels; give uint8 or floats in [0, 1]")
    batch = tensor.detach().reshape(-1, *tensor.shape[-3:]).cpu()
    outputs = []
    for image in batch:
        hwc = image.permute(1, 2, 0)
        array = hwc.numpy() if image.dtype == torch.uint8 else hwc.float().numpy()
        restored = _deblur_array(array[..., 0] if array.shape[-1] == 1 else array, predictor)
        outputs.append(torch.from_numpy(np.ascontiguousarray(restored.reshape(array.shape))).permute(2, 0, 1))
    return torch.stack(outputs).reshape(tensor.shape).to(tensor.device, tensor.dtype)


def _from_pil(image: PILImage.Image) -> tuple[np.ndarray, str]:
    """The pixels of a PIL image as an array `_deblur_array` takes, and the mode to return."""
    mode = image.mode
    if mode in _PIL_GRAY16:
        return np.asarray(image).astype(np.uint16), mode
    if mode == "I":  # 32-bit integers: taken as 16-bit gray when they fit
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise UserError("nafft.deblur: a PIL image of 32-bit integers outside 0..65535")
        return array.astype(np.uint16), mode
    if mode == "F":
        return np.asarray(image, dtype=np.float32), mode
    if mode not in _PIL_KEPT:
        has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
        target = ("LA" if has_alpha else "L") if mode in ("1", "L", "La") else ("RGBA" if has_alpha else "RGB")
        image, mode = image.convert(target), target
    return np.asarray(image), mode


def _deblur_pil(image: PILImage.Image, predictor: Predictor) -> PILImage.Image:
    array, mode = _from_pil(image)
    restored = _deblur_array(array, predictor)
    # uint8 arrays come back as L, LA, RGB or RGBA, uint16 ones as I;16 and float32 ones as F
    result = PILImage.fromarray(restored.astype(np.float32) if mode == "F" else restored)
    if result.mode != mode:  # 32-bit integers, or 16-bit gray of another byte order
        result = result.convert(mode)
    result.info = dict(image.info)
    return result
