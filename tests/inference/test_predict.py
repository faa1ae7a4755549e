import pytest
import torch

from nafft.inference import DeviceError, Predictor, self_ensemble
from nafft.models import build_model, enable_tlc
from tests.inference.conftest import LocalNet, randomize, tiny_config


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
    pred = Predictor(tiny_nafnet, device="cpu", tile=0)(x)
    assert pred.shape == x.shape
    with torch.no_grad():
        torch.testing.assert_close(pred, tiny_nafnet(x[None])[0])


def test_tiling_equals_whole_image_for_a_local_network(local_net):
    x = torch.rand(2, 3, 301, 257)
    whole = Predictor(local_net, device="cpu", tile=0)(x)
    predictor = Predictor(local_net, device="cpu", tile=128, overlap=40)
    tiled = predictor(x)
    assert predictor.last_tiles == 9
    torch.testing.assert_close(tiled, whole, rtol=0, atol=2e-6)
    # without overlap the zero padding at every tile border shows: the comparison above can fail
    x = x[:, :, :256, :256]
    seams = Predictor(local_net, device="cpu", tile=128, overlap=0)(x)  # 2x2 tiles that just touch
    assert (seams - Predictor(local_net, device="cpu", tile=0)(x)).abs().max() > 1e-2


def test_single_tile_pixels_are_copied_exactly(local_net):
    x = torch.rand(1, 3, 200, 90)
    whole = Predictor(local_net, device="cpu", tile=0)(x)
    tiled = Predictor(local_net, device="cpu", tile=128, overlap=40)(x)
    # rows 0..60 are covered by the first tile only (weight exactly 1.0): bit-identical to the whole image
    assert torch.equal(tiled[:, :, :60], whole[:, :, :60])


def test_auto_tiling_kicks_in_over_the_budget(local_net, tiny_nafnet):
    x = torch.rand(3, 301, 257)
    small = Predictor(local_net, device="cpu", memory_budget=1)
    out = small(x)
    assert small.last_tiles > 1
    torch.testing.assert_close(out, Predictor(local_net, device="cpu", tile=0)(x), rtol=0, atol=2e-6)
    roomy = Predictor(tiny_nafnet, device="cpu", memory_budget=1 << 40)
    roomy(x)
    assert roomy.last_tiles == 0


def test_tiled_nafnet_with_tlc_stays_close_to_whole(tiny_nafnet):
    model = enable_tlc(randomize(build_model(tiny_config())), train_size=16).eval()
    x = torch.rand(3, 150, 170)
    whole = Predictor(model, device="cpu", tile=0)(x)
    tiled = Predictor(model, device="cpu", tile=96, overlap=24)(x)
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
    out = Predictor(local_net, device="cpu", tile=0, self_ensemble=True)(x)
    with torch.no_grad():
        torch.testing.assert_close(out, self_ensemble(local_net, x[None])[0])


def test_half_and_missing_cuda_are_user_errors(local_net):
    with pytest.raises(DeviceError, match="CUDA"):
        Predictor(local_net, device="cpu", half=True)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            Predictor(local_net, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_half_on_cuda_is_close_to_float32(tiny_nafnet):
    x = torch.rand(3, 45, 61)
    full = Predictor(tiny_nafnet, device="cpu", tile=0)(x)
    half = Predictor(
        randomize(build_model(tiny_config(attention="eca", skip="fft"))),
        device="cuda",
        half=True,
        tile=32,
        overlap=8,
    )(x)
    assert half.dtype == torch.float32 and half.shape == x.shape
    assert (half - full).abs().max() < 0.05
