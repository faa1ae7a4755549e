"""Helpers that build small pair folders on disk."""

from pathlib import Path

import numpy as np

from nafft.data.io import write_image


def coordinate_image(height, width, tag):
    """uint16 (H, W, 3): R = row, G = column, B = `tag` - every pixel says where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([y, x, np.full_like(y, tag)], axis=-1).astype(np.uint16)


def make_pair(root: Path, rel: str, height=40, width=48, seed=0, names=("blur", "sharp"), sharp_size=None):
    rng = np.random.default_rng(seed)
    blur = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sh, sw = sharp_size or (height, width)
    sharp = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
    write_image(root / names[0] / rel, blur)
    write_image(root / names[1] / rel, sharp)
    return blur, sharp
