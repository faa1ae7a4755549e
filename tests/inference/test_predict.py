import pytest
import torch

from nafft.inference import DeviceError, OpenedModel, Predictor, TileLayout, self_ensemble
from nafft.models import build_model, enable_tlc
from tests.inference.conftest import LocalNet, on_cpu, randomize, tiny_config


@pytest.fixture(scope="module")
def local_net():
    torch.manual_seed(0)
    return LocalNet().eval()


@pytest.fixture(scope="module")
def tiny_nafnet():
    return randomize(build_model(tiny_config(attention="eca", skip="fft"))).eval()


@pytest.mark.parametrize("size", [(30, 37), (1, 1), (17, 4), (33, 65)])
def test_whole_image_keeps_odd_sizes(tiny_nafnet, size):
    x = torch.rand(3, *size)
    pred = Predictor(on_cpu(tiny_nafnet), tile=0)(x)
    assert pred.shape == x.shape
    with torch.no_grad():
        torch.testing.assert_close(pred, tiny_nafnet(x[None])[0])


def test_tiling_equals_whole_image_for_a_local_network(local_net):
    x = torch.rand(2, 3, 301, 257)
    whole = Predictor(on_cpu(local_net), tile=0)(x)
    predictor = Predictor(on_cpu(local_net), tile=128, overlap=40)
    tiled = predictor(x)
    assert predictor.last_tiles == 9
    torch.testing.assert_close(tiled, whole, rtol=0, atol=2e-6)
    # without overlap the zero padding at every tile border shows: the comparison above can fail
    x = x[:, :, :256, :256]
    seams = Predictor(on_cpu(local_net), tile=128, overlap=0)(x)  # 2x2 tiles that just touch
    assert (seams - Predictor(on_cpu(local_net), tile=0)(x)).abs().max() > 1e-2


def test_single_tile_pixels_are_copied_exactly(local_net):
    x = torch.rand(1, 3, 200, 90)
    whole = Predictor(on_cpu(local_net), tile=0)(x)
    tiled = Predictor(on_cpu(local_net), tile=128, overlap=40)(x)
    # rows 0..60 are covered by the first tile only (weight exactly 1.0): bit-identical to the whole image
    assert torch.equal(tiled[:, :, :60], whole[:, :, :60])


def test_auto_tiling_kicks_in_over_the_budget(local_net, tiny_nafnet):
    x = torch.rand(3, 301, 257)
    small = Predictor(on_cpu(local_net), memory_budget=1)
    out = small(x)
    assert small.last_tiles > 1
    torch.testing.assert_close(out, Predictor(on_cpu(local_net), tile=0)(x), rtol=0, atol=2e-6)
    roomy = Predictor(on_cpu(tiny_nafnet), memory_budget=1 << 40)
    roomy(x)
    assert roomy.last_tiles == 0


def test_tiled_nafnet_with_tlc_stays_close_to_whole(tiny_nafnet):
    model = enable_tlc(randomize(build_model(tiny_config())), train_size=16).eval()
    x = torch.rand(3, 150, 170)
    whole = Predictor(on_cpu(model), tile=0)(x)
    tiled = Predictor(on_cpu(model), tile=96, overlap=24)(x)
    assert tiled.shape == whole.shape
    # TLC windows (24 px at full resolution) are clipped per tile only near tile borders
    assert (tiled - whole).abs().mean() < 1e-3


def test_self_ensemble_matches_rot90_definition():
    weight = torch.randn(3, 3, 3, 3)

    def f(x):  # not flip-invariant, and position dependent
        ramp = torch.linspace(0, 1, x.shape[-1])
        return torch.nn.functional.conv2d(x, weight, padding=1) + ramp

    x = torch.rand(1, 3, 9, 14)
    expected = []
    for k in range(4):
        expected.append(torch.rot90(f(torch.rot90(x, k, (-2, -1))), -k, (-2, -1)))
        xf = x.flip(-1)
        expected.append(torch.rot90(f(torch.rot90(xf, k, (-2, -1))), -k, (-2, -1)).flip(-1))
    torch.testing.assert_close(self_ensemble(f, x), torch.stack(expected).mean(0))
    assert not torch.allclose(self_ensemble(f, x), f(x), atol=1e-3)


def test_self_ensemble_in_predictor(local_net):
    x = torch.rand(3, 30, 37)
    out = Predictor(on_cpu(local_net), tile=0, self_ensemble=True)(x)
    with torch.no_grad():
        torch.testing.assert_close(out, self_ensemble(local_net, x[None])[0])


def test_half_and_missing_cuda_are_user_errors(local_net):
    with pytest.raises(DeviceError, match="CUDA"):
        Predictor(on_cpu(local_net), half=True)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            OpenedModel.from_network(local_net, device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_half_on_cuda_is_close_to_float32(tiny_nafnet):
    """One network, the same tiles, two precisions: float16 rounds, but stays close to float32."""
    x = torch.rand(3, 45, 61)
    opened = OpenedModel.from_network(tiny_nafnet, device="cuda")
    full = Predictor(opened, tile=32, overlap=8)(x)
    half = Predictor(opened, half=True, tile=32, overlap=8)(x)
    assert half.dtype == torch.float32 and half.shape == x.shape
    assert next(opened.network.parameters()).dtype == torch.float32  # the float16 copy is the predictor's
    error = (half - full).abs().max()
    assert 0 < error < 0.05  # it did run in float16, and rounding is all that differs
    torch.testing.assert_close(full, Predictor(on_cpu(tiny_nafnet), tile=32, overlap=8)(x), rtol=1e-4, atol=1e-4)


def test_tile_and_overlap_ranges_are_checked_before_any_work(tiny_nafnet):
    from nafft.errors import UserError
    from nafft.models import build_model

    nafnet = build_model("nafnet-small")  # padding multiple 16
    for tile in (1, 15, 16, 63):
        with pytest.raises(UserError, match=rf"--tile {tile}: too small for this model; use 0 \(never tile\) or a "
                                            r"tile of at least 64 px"):
            Predictor(on_cpu(nafnet), tile=tile)
    Predictor(on_cpu(nafnet), tile=64)  # the smallest tile is fine
    with pytest.raises(UserError, match=r"--overlap 40 is more than a third of --tile 96; use --overlap 0..32"):
        Predictor(on_cpu(nafnet), tile=96, overlap=40)
    with pytest.raises(UserError, match="--overlap must be 0 or more"):
        Predictor(on_cpu(nafnet), overlap=-1)
    for budget in (0, -1):
        with pytest.raises(UserError, match="--memory-budget must be a positive size"):
            Predictor(on_cpu(nafnet), memory_budget=budget)


def test_default_overlap_fits_a_small_tile(local_net):
    predictor = Predictor(on_cpu(local_net), tile=48)  # 32 px would be more than a third of 48
    assert predictor.overlap_for(48) == 16 and predictor.overlap_for(512) == 32
    x = torch.rand(1, 3, 100, 100)
    torch.testing.assert_close(predictor(x), Predictor(on_cpu(local_net), tile=0)(x), rtol=0, atol=2e-6)
    assert predictor.last_tiles == 9


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "meta"])
def test_unknown_devices_are_user_errors(local_net, name):
    with pytest.raises(DeviceError, match=rf"--device {name}: not (a device|supported); use auto, cpu, cuda or cuda:N"):
        OpenedModel.from_network(local_net, device=name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_index_without_cuda_is_a_user_error(local_net):
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        OpenedModel.from_network(local_net, device="cuda:3")


def test_cpu_tiles_large_images_for_speed():
    """Whole images whose full-resolution buffers exceed 32 MiB run slower per pixel on the CPU, the more the larger
    (page faults; bench_inference.py --sections crossover); tiles with small buffers are chosen where their overlaps
    cost less than that."""
    from nafft.inference.predict import (
        FAST_BUFFER_BYTES,
        FAST_TILE_BYTES,
        largest_buffer,
        speed_tile,
        whole_slowdown,
    )
    from nafft.models import build_model

    small = on_cpu(build_model("nafnet-small"))  # width 16, expansion 2: 128 bytes per pixel at full resolution
    assert largest_buffer(small, 512, 512) == FAST_BUFFER_BYTES
    assert speed_tile(small, 512, 512) is None and speed_tile(small, 560, 560) is None
    for side in (576, 768, 1024, 2048):
        tile = speed_tile(small, side, side)
        assert tile is not None and tile % 16 == 0 and 256 <= tile < side
        assert largest_buffer(small, tile, tile) <= FAST_TILE_BYTES
        computed = len(TileLayout(side, side, tile, 32, 16)) * tile * tile
        assert computed < whole_slowdown(largest_buffer(small, side, side)) * side * side
    assert speed_tile(small, 3000, 4000) == 368
    # nafnet-w32 at 512x512: whole beat 256 px tiles, which compute 2.25x the pixels; a 2x2 layout is all that pays
    w32 = on_cpu(build_model("nafnet-w32"))
    tile = speed_tile(w32, 512, 512)
    assert len(TileLayout(512, 512, tile, 32, 16)) == 4
    predictor = Predictor(small, memory_budget=1 << 40)
    assert predictor.tile_for(3000, 4000) == 368
    assert Predictor(small, tile=0).tile_for(3000, 4000) is None  # --tile 0: never
    assert Predictor(small, tile=1024).tile_for(3000, 4000) == 1024  # an explicit tile wins
    assert Predictor(small, overlap=120, memory_budget=1 << 40).tile_for(3000, 4000) >= 360


def test_speed_tiles_are_never_smaller_than_the_tlc_window():
    """A tile no larger than TLC's window would turn TLC into pooling over the tile: speed tiling never does that."""
    from nafft.inference.predict import speed_tile
    from nafft.models import build_model

    small = on_cpu(enable_tlc(build_model("nafnet-small"), 256))  # 384 px windows
    assert small.tlc and small.tlc_window == (384, 384)
    assert all(speed_tile(small, h, w) >= 384 for h, w in ((768, 768), (1728, 2304), (3000, 4000)))
    assert speed_tile(small, 640, 640) is None  # 384 px tiles would compute more than they save
    w32 = on_cpu(enable_tlc(build_model("nafnet-w32"), 256))  # no tile of 384 px keeps w32's buffers small: whole
    assert speed_tile(w32, 3000, 4000) is None
    plain = on_cpu(build_model("nafnet-w32"))
    assert plain.tlc_window is None and not plain.tlc and speed_tile(plain, 3000, 4000) == 304


def test_the_callers_model_is_left_as_it_was(tiny_nafnet):
    """Opening a network in memory leaves the caller's module alone (mode, device, memory format): a copy changes."""
    model = tiny_nafnet.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 24, 40)
    opened = OpenedModel.from_network(model, device="cpu", channels_last=True)
    out = Predictor(opened, tile=0)(x)
    assert opened.channels_last and opened.memory_format == torch.channels_last
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) and value.is_contiguous(), key
    expected = Predictor(on_cpu(model.eval()), tile=0)(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    plain = model.eval()
    assert on_cpu(plain).network is plain  # nothing to change: no copy
