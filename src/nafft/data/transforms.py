"""Geometric transforms of paired images: crops, and the 8 flips/rotations of the square (the dihedral group).

The same parameters are applied to the blurred and the sharp image, so the pair stays aligned. The dihedral
transforms serve training augmentation (numpy (H, W, C) arrays) and the x8 self-ensemble of inference (torch
(..., H, W) tensors, `axes=(-2, -1)`): one definition for both.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Image = TypeVar("Image", np.ndarray, torch.Tensor)

# The dihedral group of the square: transform t is rot90 by (t % 4) quarter turns (from the height axis towards the
# width axis), then, for t >= 4, a left-right flip. t = 0 is the identity.
NUM_TRANSFORMS = 8


def crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The `size` x `size` window at (top, left) (a view)."""
    if top < 0 or left < 0 or top + size > array.shape[0] or left + size > array.shape[1]:
        raise ValueError(f"crop ({top}, {left}, {size}) outside an image of {array.shape[:2]}")
    return array[top : top + size, left : left + size]


def _check(transform: int) -> None:
    if not 0 <= transform < NUM_TRANSFORMS:
        raise ValueError(f"transform must be in 0..7, got {transform}")


def dihedral(image: Image, transform: int, axes: tuple[int, int] = (0, 1)) -> Image:
    """Apply dihedral transform `transform` (0-7) over the (height, width) `axes` of an array (a view) or tensor."""
    _check(transform)
    if isinstance(image, torch.Tensor):
        out = torch.rot90(image, transform % 4, dims=axes) if transform % 4 else image
        return out.flip(axes[1]) if transform >= 4 else out
    out = np.rot90(image, k=transform % 4, axes=axes)
    return np.flip(out, axis=axes[1]) if transform >= 4 else out


def undo_dihedral(image: Image, transform: int, axes: tuple[int, int] = (0, 1)) -> Image:
    """The inverse of `dihedral(., transform, axes)`: the flip undone first, then the quarter turns."""
    _check(transform)
    if isinstance(image, torch.Tensor):
        out = image.flip(axes[1]) if transform >= 4 else image
        return torch.rot90(out, -(transform % 4), dims=axes) if transform % 4 else out
    out = np.flip(image, axis=axes[1]) if transform >= 4 else image
    return np.rot90(out, k=-(transform % 4), axes=axes)
