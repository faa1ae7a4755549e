import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from benchmarks.reference.metrics import ssim3d_numpy, ssim_numpy

import nafft.metrics
from nafft.metrics import (
    gaussian_taps,
    mean_finite,
    psnr,
    psnr_from_mse,
    ssim,
    ssim3d,
    ssim_and_ssim3d,
    to_uint8,
)

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def rand_u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_to_uint8_rounds_and_clamps_like_tensor2img():
    t = torch.tensor([[[-0.5, 0.0, 0.5, 0.25], [0.499, 1.0, 1.2, 0.2]]])  # (1, 2, 4)
    out = to_uint8(t)
    assert out.dtype == np.uint8 and out.shape == (2, 4, 1)
    # x * 255 in float32, rounded half to even: 127.5 -> 128, 63.75 -> 64, 127.245 -> 127, 51.0 -> 51
    assert out[:, :, 0].tolist() == [[0, 0, 128, 64], [127, 255, 255, 51]]
    arr = np.array([[0.2, 1.7]], dtype=np.float32)
    assert to_uint8(arr).tolist() == [[51, 255]]
    u8 = rand_u8((4, 5, 3))
    assert to_uint8(u8) is u8


def test_to_uint8_rejects_batches_and_odd_dtypes():
    with pytest.raises(ValueError, match="batch of 2"):
        to_uint8(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="int32"):
        to_uint8(np.zeros((4, 4), dtype=np.int32))


def test_psnr_hand_computed():
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # one of 12 values off by 255: MSE = 255^2 / 12
    assert psnr(a, b) == pytest.approx(10 * math.log10(12))
    b = a + 10  # every value off by 10: MSE = 100
    assert psnr(a, b) == pytest.approx(20 * math.log10(25.5))


def test_psnr_identical_is_inf_and_mean_leaves_it_out():
    a = rand_u8((8, 9, 3))
    assert psnr(a, a) == math.inf
    # float inputs that round to the same bytes are identical too
    assert psnr(torch.from_numpy(a).permute(2, 0, 1).float() / 255 + 0.001, a) == math.inf
    assert mean_finite([30.0, math.inf, 20.0]) == (25.0, 1)
    mean, left_out = mean_finite([math.inf])
    assert math.isnan(mean) and left_out == 1


def test_psnr_tensor_and_array_agree():
    a, b = rand_u8((16, 17, 3), 1), rand_u8((16, 17, 3), 2)
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).float().unsqueeze(0) / 255
    assert psnr(ta, tb) == pytest.approx(psnr(a, b), abs=1e-12)


def test_gaussian_taps_match_formula():
    taps = gaussian_taps()
    assert taps.shape == (11,) and taps.sum() == pytest.approx(1.0)
    assert taps[5] / taps[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


@pytest.mark.parametrize("fn", [ssim, ssim3d])
def test_ssim_of_constant_images_by_hand(fn):
    # constant images: all variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1) everywhere
    a = np.full((13, 14, 3), 100, dtype=np.uint8)
    b = np.full((13, 14, 3), 60, dtype=np.uint8)
    expected = (2 * 100 * 60 + C1) / (100**2 + 60**2 + C1)
    assert fn(a, b) == pytest.approx(expected, rel=1e-12)
    assert fn(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim2d_is_per_channel_mean():
    # channel-wise constants: 2-D SSIM averages the per-channel closed forms
    a = np.stack([np.full((12, 12), v, np.uint8) for v in (10, 100, 200)], axis=2)
    b = np.stack([np.full((12, 12), v, np.uint8) for v in (20, 100, 150)], axis=2)
    expected = np.mean(
        [(2 * p * q + C1) / (p * p + q * q + C1) for p, q in ((10, 20), (100, 100), (200, 150))]
    )
    assert ssim(a, b) == pytest.approx(expected, rel=1e-12)


def test_ssim3d_mixes_channels_by_hand():
    # channel-wise constants: the 3-D window blurs across channels with the replicate-padded 1-D Gaussian
    va, vb = np.array([10.0, 100.0, 200.0]), np.array([20.0, 100.0, 150.0])
    a = np.broadcast_to(va.astype(np.uint8), (12, 12, 3)).copy()
    b = np.broadcast_to(vb.astype(np.uint8), (12, 12, 3)).copy()
    g = gaussian_taps()
    idx = np.clip(np.arange(-5, 8), 0, 2)  # replicate padding of the 3 channels to 13

    def blur(v):
        p = v[idx]
        return np.array([np.dot(g, p[c : c + 11]) for c in range(3)])

    mx, my = blur(va), blur(vb)
    vx, vy, cxy = blur(va * va) - mx**2, blur(vb * vb) - my**2, blur(va * vb) - mx * my
    per_c = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    assert ssim3d(a, b) == pytest.approx(per_c.mean(), rel=1e-12)
    assert ssim3d(a, b) != pytest.approx(ssim(a, b), rel=1e-3)


def reference_ssim3d_torch(a: np.ndarray, b: np.ndarray) -> float:
    """NAFNet's recipe written from its description: Conv3d with an 11^3 Gaussian, replicate padding 5, float64."""
    g = torch.from_numpy(gaussian_taps())
    kernel = (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]

    def blur(t):
        t = F.pad(t[None, None], (5, 5, 5, 5, 5, 5), mode="replicate")
        return F.conv3d(t, kernel)[0, 0]

    x, y = torch.from_numpy(a).double(), torch.from_numpy(b).double()
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    m = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return float(m.mean())


def test_ssim3d_matches_conv3d_reference():
    rng = np.random.default_rng(3)
    a = rand_u8((21, 26, 3), 4)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert ssim3d(a, b) == pytest.approx(reference_ssim3d_torch(a, b), abs=1e-12)
    assert ssim3d_numpy(a, b) == pytest.approx(reference_ssim3d_torch(a, b), abs=1e-12)


def test_ssim2d_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(5)
    # smooth-ish content with noise, like a real restoration
    base = np.cumsum(np.cumsum(rng.normal(size=(48, 53, 3)), 0), 1)
    base = ((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    noisy = np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
    ours = ssim(noisy, base)
    ref = metrics.structural_similarity(
        noisy,
        base,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    # REFERENCE.md allows 0.4 %; skimage's valid crop makes the two equal up to rounding here
    assert ours == pytest.approx(ref, rel=4e-3)
    assert ours == pytest.approx(ref, abs=1e-9)


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(rand_u8((10, 20, 3)), rand_u8((10, 20, 3)))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(rand_u8((12, 12, 3)), rand_u8((12, 13, 3)))


def _pair_like_a_restoration(shape, seed):
    rng = np.random.default_rng(seed)
    base = np.cumsum(np.cumsum(rng.normal(size=shape), 0), 1)
    base = ((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    noisy = np.clip(base.astype(int) + rng.integers(-25, 26, base.shape), 0, 255).astype(np.uint8)
    return noisy, base


@pytest.mark.parametrize(
    "shape",
    [(11, 11, 3), (12, 13, 3), (37, 29, 3), (64, 50), (23, 31, 1), (48, 53, 4), (90, 17, 3)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_torch_ssims_equal_the_numpy_reference(shape):
    # colour, gray (2-D arrays and one channel), four channels, sizes at and above the window
    a, b = _pair_like_a_restoration(shape, sum(shape))
    want_2d, want_3d = ssim_numpy(a, b), ssim3d_numpy(a, b)
    assert ssim(a, b) == pytest.approx(want_2d, abs=1e-10)
    assert ssim3d(a, b) == pytest.approx(want_3d, abs=1e-10)
    both = ssim_and_ssim3d(a, b)
    assert both[0] == pytest.approx(want_2d, abs=1e-10) and both[1] == pytest.approx(want_3d, abs=1e-10)
    assert want_3d != pytest.approx(want_2d, abs=1e-4)  # two different conventions, both checked


@pytest.mark.parametrize("strip", [200, 1000, 3000])
def test_ssims_do_not_depend_on_the_strips(monkeypatch, strip):
    # many strips of a few rows each: the 2-D map's first and last valid rows fall inside strips, and strips end
    # in the replicate-padded border
    a, b = _pair_like_a_restoration((61, 20, 3), 7)
    want = ssim_numpy(a, b), ssim3d_numpy(a, b)
    monkeypatch.setattr(nafft.metrics, "_STRIP_ELEMENTS", strip)
    got = ssim_and_ssim3d(a, b)
    assert got[0] == pytest.approx(want[0], abs=1e-10) and got[1] == pytest.approx(want[1], abs=1e-10)
    assert ssim(a, b) == pytest.approx(want[0], abs=1e-10) and ssim3d(a, b) == pytest.approx(want[1], abs=1e-10)


def test_ssims_of_float_tensors_and_small_images():
    a, b = _pair_like_a_restoration((30, 40, 3), 3)
    ta = torch.from_numpy(a).permute(2, 0, 1).double() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).unsqueeze(0).float() / 255
    assert ssim(ta, tb) == pytest.approx(ssim_numpy(a, b), abs=1e-10)
    assert ssim3d(ta, tb) == pytest.approx(ssim3d_numpy(a, b), abs=1e-10)
    small = a[:6, :9]  # SSIM-3D pads any size; the 2-D window does not fit
    assert ssim3d(small, b[:6, :9]) == pytest.approx(ssim3d_numpy(small, b[:6, :9]), abs=1e-10)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(small, b[:6, :9])
    with pytest.raises(ValueError, match="differ in shape"):
        ssim3d(a, b[:, :-1])


def test_one_psnr_formula_for_8_bit_and_float_images():
    assert psnr_from_mse(0.0) == math.inf and psnr_from_mse(255.0**2) == 0.0
    assert psnr_from_mse(1e-4, data_range=1.0) == pytest.approx(40.0)
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE 100 / 48
    assert psnr(a, b) == pytest.approx(psnr_from_mse(100 / 48)) == pytest.approx(10 * math.log10(255**2 * 48 / 100))
