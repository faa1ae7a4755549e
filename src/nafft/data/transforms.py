"""Paired geometric augmentation on (H, W, C) arrays: crops and the 8 flips/rotations of the square.

The same parameters are applied to the blurred and the sharp image, so the pair stays aligned.
"""

from __future__ import annotations

import numpy as np

# The dihedral group of the square: transform t is rot90 by (t % 4) quarter turns, then, for t >= 4, a
# left-right flip. t = 0 is the identity.
NUM_TRANSFORMS = 8


def crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The `size` x `size` window at (top, left) (a view)."""
    if top < 0 or left < 0 or top + size > array.shape[0] or left + size > array.shape[1]:
        raise ValueError(f"crop ({top}, {left}, {size}) outside an image of {array.shape[:2]}")
    return array[top : top + size, left : left + size]


def dihedral(array: np.ndarray, transform: int) -> np.ndarray:
    """Apply dihedral transform `transform` (0-7) to an (H, W, ...) array (a view)."""
    if not 0 <= transform < NUM_TRANSFORMS:
        raise ValueError(f"transform must be in 0..7, got {transform}")
    out = np.rot90(array, k=transform % 4, axes=(0, 1))
    return out[:, ::-1] if transform >= 4 else out
