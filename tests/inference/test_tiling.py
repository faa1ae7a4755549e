import pytest
import torch

from nafft.inference.tiling import TileLayout, axis_weights, round_up, tile_starts


@pytest.mark.parametrize(
    "length,tile,overlap,multiple",
    [
        (1024, 512, 32, 16),
        (2160, 512, 32, 16),
        (3840, 512, 64, 16),
        (961, 512, 64, 1),
        (64, 32, 8, 4),
        (100, 100, 10, 4),
    ],
)
def test_starts_cover_aligned_and_overlap(length, tile, overlap, multiple):
    length = round_up(length, multiple)
    starts = tile_starts(length, tile, overlap, multiple)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(s % multiple == 0 for s in starts)
    assert all(tile - (b - a) >= overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("length,tile,overlap", [(1024, 512, 32), (961, 512, 64), (64, 32, 8), (70, 24, 8)])
def test_weights_are_a_partition_of_unity(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    weights = axis_weights(starts, tile, length)
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, weights):
        assert (w >= 0).all()
        total[s : s + tile] += w
    torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64), rtol=0, atol=1e-15)
    # where one tile covers a pixel alone its weight is exactly 1, and near an interior tile edge it is exactly 0
    first = weights[0]
    assert first[0] == 1.0
    o = starts[0] + tile - starts[1]
    assert (first[tile - o // 4 :] == 0).all()
    assert (weights[1][: o // 4] == 0).all()


def test_weights_cross_over_smoothly():
    starts = tile_starts(64, 32, 8)
    w = axis_weights(starts, 32, 64)[0]
    steps = (w[1:] - w[:-1]).abs()
    assert steps.max() < 0.5  # no jump from 1 to 0: a ramp over several pixels
    assert torch.all(w[1:] <= w[:-1] + 1e-12)  # monotone down towards the edge


def test_layout_clamps_tiles_to_small_images_and_rejects_large_overlap():
    layout = TileLayout(30, 37, 64, 8, multiple=4)
    assert layout.tile == (32, 40) and len(layout) == 1
    with pytest.raises(ValueError, match="third of the tile"):
        TileLayout(100, 100, 32, 16, multiple=4)
