"""Tile layouts and blend weights for tiled inference.

An image axis of length L (already rounded up to the network's padding multiple m) is covered by tiles of length T
(a multiple of m) whose starts are multiples of m, spread evenly so that neighbours overlap by at least the
requested overlap O. Aligned starts keep every tile on the same down-sampling grid as the whole image, so a tile
sees exactly the features the whole-image pass would compute wherever its context reaches.

Blending is a partition of unity, separable over the two axes. Between two neighbouring tiles the overlap region
[start of the next, end of the previous) of length o is split in quarters: in the outer quarters only the tile that
is not at its edge counts (weight 0 for the other: the pixels nearest a tile border, where the zero padding of the
tile's convolutions is felt, are discarded), across the middle half the weights cross over along a raised cosine
(`w_next = (1 - cos(pi t)) / 2`, `w_prev = 1 - w_next`). At image borders a tile keeps weight 1. The weights are
finally divided by their sum, so they add up to 1 (exactly 1.0 wherever a single tile covers the pixel). With
O <= T / 3 no pixel is reached by more than two tiles' non-zero weights along an axis.
"""

from __future__ import annotations

import math

import torch


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Starts of the tiles covering [0, length), each a multiple of `multiple`, neighbours overlapping >= `overlap`.

    The number of tiles is computed, not searched for: with the largest aligned stride s = (tile - overlap) rounded
    down to the grid, n = 1 + ceil(span / s) tiles spread evenly (span = length - tile) have gaps of at most s.

    Args:
        length: the axis length; a multiple of `multiple`.
        tile: the tile length; a multiple of `multiple`.
        overlap: the least overlap between neighbours; `tile - overlap` must be at least `multiple` (the smallest
            step an aligned tile can take).
        multiple: the alignment of the starts.

    Raises:
        ValueError: arguments no aligned layout can satisfy.
    """
    if min(length, tile, multiple) < 1:
        raise ValueError(f"length, tile and multiple must be positive, got {length}, {tile}, {multiple}")
    if length % multiple or tile % multiple:
        raise ValueError(f"length {length} and tile {tile} must be multiples of {multiple}")
    if overlap < 0:
        raise ValueError(f"overlap must not be negative, got {overlap}")
    if tile >= length:
        return [0]
    if tile - overlap < multiple:
        raise ValueError(
            f"overlap must be in [0, {tile - multiple}] for tile {tile} on a grid of {multiple} px, got {overlap}"
        )
    span = (length - tile) // multiple  # in units of `multiple`
    stride = (tile - overlap) // multiple  # the largest aligned stride, >= 1
    gaps = -(-span // stride)  # count - 1
    return [multiple * ((i * span) // gaps) for i in range(gaps + 1)]


def _ramp(n: int) -> torch.Tensor:
    """Raised cosine from ~0 to ~1 over n samples, sampled at pixel centres, float64."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def axis_weights(starts: list[int], tile: int, length: int) -> list[torch.Tensor]:
    """Per-tile blend weights along one axis (float64, length `tile` each); they sum to 1 at every position."""
    raw = [torch.ones(tile, dtype=torch.float64) for _ in starts]
    for i in range(len(starts) - 1):
        a, b = starts[i], starts[i + 1]  # overlap [b, a + tile)
        o = a + tile - b
        quarter = o // 4
        half = o - 2 * quarter
        up = _ramp(half)
        # previous tile: 1 ... ramp down over the middle half, 0 in the last quarter
        prev = raw[i]
        prev[b - a + quarter : b - a + quarter + half] *= 1 - up
        prev[b - a + quarter + half :] = 0
        # next tile: 0 in the first quarter, ramp up over the middle half
        nxt = raw[i + 1]
        nxt[:quarter] = 0
        nxt[quarter : quarter + half] *= up
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, raw):
        total[s : s + tile] += w[: max(0, min(tile, length - s))]
    if bool((total <= 0).any()):
        raise ValueError("tile layout leaves pixels without weight; the overlap is too large for the tile")
    return [w / total[s : s + tile] for s, w in zip(starts, raw)]


class TileLayout:
    """Tiles over an (H, W) image: aligned starts per axis and separable normalised weights.

    Args:
        height, width: the image size.
        tile: tile side (rounded up to `multiple`); clamped to the padded image size per axis.
        overlap: least overlap between neighbouring tiles; at most a third of the tile.
        multiple: the network's padding multiple.
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int, multiple: int = 1):
        if tile < 1:
            raise ValueError(f"tile must be positive, got {tile}")
        if overlap < 0:
            raise ValueError(f"overlap must not be negative, got {overlap}")
        self.height, self.width, self.multiple = height, width, multiple
        tile = round_up(tile, multiple)
        if overlap > tile // 3:
            raise ValueError(f"overlap {overlap} is more than a third of the tile {tile}; use a larger tile")
        self.padded = (round_up(height, multiple), round_up(width, multiple))
        self.tile = (min(tile, self.padded[0]), min(tile, self.padded[1]))
        self.overlap = overlap
        self.starts = tuple(
            tile_starts(length, t, overlap, multiple) for length, t in zip(self.padded, self.tile)
        )
        self.weights = tuple(
            axis_weights(s, t, length) for s, t, length in zip(self.starts, self.tile, self.padded)
        )

    def __len__(self) -> int:
        return len(self.starts[0]) * len(self.starts[1])

    def __iter__(self):
        """(y, x, weight_y, weight_x) per tile, row by row; weights are float64 vectors of the tile's length."""
        for y, wy in zip(self.starts[0], self.weights[0]):
            for x, wx in zip(self.starts[1], self.weights[1]):
                yield y, x, wy, wx
