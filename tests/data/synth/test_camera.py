import numpy as np
import pytest

from nafft.data.synth.camera import (
    NOISE_GAIN_RANGE,
    READ_VARIANCE,
    RESPONSE_GAMMA_RANGE,
    RESPONSE_KINDS,
    SHOT_VARIANCE,
    ResponseCurve,
    exposure_factor,
    gaussian_noise,
    jpeg_roundtrip,
    noise_level,
    poisson_gaussian,
    random_response,
    srgb_decode,
    srgb_encode,
)


def test_poisson_gaussian_noise_has_the_asked_mean_and_variance():
    rng = np.random.default_rng(0)
    shot, read = 4e-4, 1e-4
    for level in (0.02, 0.3, 0.9):
        flat = np.full(200_000, level)
        noisy = poisson_gaussian(flat, rng, shot, read)
        assert noisy.mean() == pytest.approx(level, abs=4 * np.sqrt((shot * level + read) / flat.size))
        assert noisy.var() == pytest.approx(shot * level + read, rel=0.02)
    # Poisson: the counts are integers, so without read noise the values are multiples of `shot`
    counts = poisson_gaussian(np.full(1000, 0.01), rng, shot, 0.0) / shot
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    np.testing.assert_array_equal(poisson_gaussian(np.full(10, 0.5), rng, 0.0, 0.0), np.full(10, 0.5))


def test_gaussian_noise_variance_grows_with_the_signal():
    rng = np.random.default_rng(1)
    low = gaussian_noise(np.full(100_000, 0.05), rng, 1e-3, 1e-4)
    high = gaussian_noise(np.full(100_000, 0.8), rng, 1e-3, 1e-4)
    assert low.var() == pytest.approx(1e-3 * 0.05 + 1e-4, rel=0.03)
    assert high.var() == pytest.approx(1e-3 * 0.8 + 1e-4, rel=0.03)


def test_noise_levels_follow_rsblur_with_a_log_uniform_gain():
    rng = np.random.default_rng(2)
    levels = np.array([noise_level(rng) for _ in range(3000)])
    gains = levels[:, 0] / SHOT_VARIANCE
    np.testing.assert_allclose(levels[:, 1] / READ_VARIANCE, gains)  # one gain for both terms
    assert NOISE_GAIN_RANGE[0] <= gains.min() and gains.max() <= NOISE_GAIN_RANGE[1]
    assert np.median(np.log(gains)) == pytest.approx(np.mean(np.log(NOISE_GAIN_RANGE)), abs=0.1)
    doubled = noise_level(np.random.default_rng(3), scale=2.0)
    single = noise_level(np.random.default_rng(3))
    assert doubled[0] == pytest.approx(4 * single[0])  # the scale multiplies the standard deviation


def test_exposure_factors_are_uniform_in_the_range():
    rng = np.random.default_rng(4)
    factors = np.array([exposure_factor(rng, 0.75) for _ in range(4000)])
    assert 0.25 <= factors.min() and factors.max() <= 1.75
    assert factors.mean() == pytest.approx(1.0, abs=0.03)
    assert factors.std() == pytest.approx(1.5 / np.sqrt(12), rel=0.05)
    assert exposure_factor(rng, 0.0) == 1.0


def test_response_curves_are_monotone_and_fix_black_and_white():
    rng = np.random.default_rng(5)
    curves = [random_response(rng) for _ in range(300)]
    assert {c.kind for c in curves} == set(RESPONSE_KINDS)
    x = np.linspace(0.0, 1.0, 1001)
    for curve in curves[:30]:
        y = curve(x)
        assert y[0] == pytest.approx(0.0, abs=1e-12) and y[-1] == pytest.approx(1.0)
        assert np.all(np.diff(y) >= 0)
        if curve.kind != "srgb":
            assert RESPONSE_GAMMA_RANGE[0] <= curve.gamma <= RESPONSE_GAMMA_RANGE[1]
    np.testing.assert_allclose(ResponseCurve()(x), x ** (1 / 2.2))
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=1e-12)
    assert srgb_encode(np.array([0.0031308]))[0] == pytest.approx(0.04045, abs=1e-5)  # the two pieces meet


def test_jpeg_roundtrip_is_lossy_but_close_and_worse_at_low_quality():
    rng = np.random.default_rng(6)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (64, 64, 3)), 0), 1)
    pixels = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)

    def error(quality):
        return np.abs(jpeg_roundtrip(pixels, quality).astype(int) - pixels).mean()

    assert jpeg_roundtrip(pixels, 90).dtype == np.uint8
    assert 0 < error(95) < error(60) < 8
