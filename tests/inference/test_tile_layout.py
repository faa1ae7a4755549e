import pytest
import torch

from nafft.inference.tile_layout import TileLayout, axis_weights, round_up, tile_starts


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


def test_tile_starts_terminates_for_every_small_case():
    """Every combination either gives a valid aligned layout or raises at once (tile_starts(208, 16, 5, 16) looped
    forever: no aligned stride fits in tile - overlap)."""
    import itertools

    checked = refused = 0
    for multiple, tile_units, length_units, overlap in itertools.product((1, 4, 16), (1, 2, 3, 5), (1, 2, 7, 13), range(0, 40, 3)):
        tile, length = tile_units * multiple, length_units * multiple
        try:
            starts = tile_starts(length, tile, overlap, multiple)
        except ValueError as exc:
            assert "overlap must be in" in str(exc)
            assert tile - overlap < multiple
            refused += 1
            continue
        checked += 1
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(s % multiple == 0 for s in starts) and starts == sorted(set(starts))
        assert all(tile - (b - a) >= overlap for a, b in zip(starts, starts[1:]))
    assert checked > 100 and refused > 10


def test_the_reported_hang_is_an_error_now():
    """Run in a child process under a timeout: before the fix this call never returned."""
    import subprocess
    import sys

    code = (
        "from nafft.inference.tile_layout import TileLayout, tile_starts\n"
        "for call in (lambda: tile_starts(208, 16, 5, 16), lambda: TileLayout(237, 201, 16, 5, multiple=16)):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "overlap must be in [0, 0] for tile 16 on a grid of 16 px, got 5",
        "overlap must be in [0, 0] for tile 16 on a grid of 16 px, got 5",
    ]
