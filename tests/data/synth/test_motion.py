import numpy as np
import pytest

from nafft.data.synth.motion import (
    DEFOCUS_RADIUS_PX,
    LONG_MOTION_PX,
    MEDIAN_MOTION_PX,
    SHAKE_EXTENT_PX,
    STILL_MOTION_PX,
    Trajectory,
    defocus,
    disc_kernel,
    gopro_blur,
    kernel_blur,
    motion_kernel,
    motion_length,
    random_trajectory,
    shake_kernel,
)


def test_frame_averaging_equals_kernel_convolution_for_pure_translation():
    canvas = np.random.default_rng(0).random((80, 80, 3))
    for seed in range(3):
        trajectory = random_trajectory(np.random.default_rng(seed), 1.0, 40)
        trajectory.angles[:] = 0.0
        kernel = motion_kernel(trajectory)
        assert kernel.sum() == pytest.approx(1.0) and kernel.min() >= 0
        np.testing.assert_allclose(gopro_blur(canvas, trajectory, 40), kernel_blur(canvas, kernel, 40), atol=1e-5)
    still = Trajectory(np.zeros((9, 2)), np.zeros(9))
    np.testing.assert_allclose(gopro_blur(canvas, still, 40), canvas[20:60, 20:60], atol=1e-6)


def test_trajectory_is_centred_on_the_middle_frame():
    trajectory = random_trajectory(np.random.default_rng(3), 1.0, 256)
    n = len(trajectory.angles)
    assert n % 2 == 1 and n >= 9
    np.testing.assert_allclose(trajectory.shifts[n // 2], 0.0, atol=1e-9)
    assert trajectory.angles[n // 2] == pytest.approx(0.0)
    steps = np.linalg.norm(np.diff(trajectory.shifts, axis=0), axis=1)
    assert steps.max() <= 0.75 + 1e-9 or n == 121


def test_motion_length_mixture_has_the_asked_shares():
    rng = np.random.default_rng(0)
    lengths = np.array([motion_length(rng, 1.5, long_motion=0.25, still=0.1) for _ in range(4000)])
    still = lengths <= STILL_MOTION_PX
    long = (lengths >= 1.5 * LONG_MOTION_PX[0]) & (lengths <= 1.5 * LONG_MOTION_PX[1])
    assert still.mean() == pytest.approx(0.1, abs=0.02)
    assert (lengths == 0).mean() == pytest.approx(0.05, abs=0.015)  # half of the still pairs do not move at all
    assert long.mean() == pytest.approx(0.25 + 0.0, abs=0.03)  # the everyday draws stop at 6x the median
    usual = lengths[~still & ~long]
    assert np.median(usual) == pytest.approx(1.5 * MEDIAN_MOTION_PX, rel=0.1)
    plain = [motion_length(np.random.default_rng(1), 1.0) for _ in range(3)]
    assert plain[0] == plain[1] == plain[2] > STILL_MOTION_PX  # no mixture: everyday range only


def test_changing_the_mixture_keeps_the_rest_of_the_randomness():
    # the same generator state after the draw, whatever the shares: trajectories that follow stay the same
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    motion_length(a, 1.0, long_motion=0.0, still=0.0)
    motion_length(b, 1.0, long_motion=0.5, still=0.5)
    assert a.random() == b.random()


def test_still_trajectories_do_not_roll_and_long_ones_are_sampled_finely():
    still = random_trajectory(np.random.default_rng(2), 1.0, 256, length=0.0)
    assert np.abs(still.shifts).max() == 0 and np.abs(still.angles).max() == 0
    long = random_trajectory(np.random.default_rng(2), 1.0, 256, length=40.0)
    assert long.length == pytest.approx(40.0, rel=1e-3)
    assert np.linalg.norm(np.diff(long.shifts, axis=0), axis=1).max() <= 0.75 + 1e-9


def test_shake_kernels_are_normalised_centred_and_sized():
    extents = []
    for seed in range(40):
        kernel = shake_kernel(np.random.default_rng(seed))
        assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0)
        side = kernel.shape[0]
        assert side % 2 == 1
        ys, xs = np.mgrid[:side, :side]
        assert (kernel * ys).sum() == pytest.approx(side // 2, abs=0.05)  # centre of mass on the central pixel
        assert (kernel * xs).sum() == pytest.approx(side // 2, abs=0.05)
        rows, cols = np.nonzero(kernel > 1e-9)
        extents.append(max(np.ptp(rows), np.ptp(cols)))
    assert SHAKE_EXTENT_PX[0] - 1 <= min(extents) and max(extents) <= SHAKE_EXTENT_PX[1] + 2
    assert np.median(extents) > 6  # log-uniform over 3-35 px: typically 10 px
    delta = shake_kernel(np.random.default_rng(0), strength=0.0)
    assert delta.max() == pytest.approx(1.0)  # no motion: the identity
    np.testing.assert_array_equal(shake_kernel(np.random.default_rng(5)), shake_kernel(np.random.default_rng(5)))


def test_disc_kernel_and_defocus():
    for radius in (1.0, 1.5, DEFOCUS_RADIUS_PX[1]):
        kernel = disc_kernel(radius)
        assert kernel.sum() == pytest.approx(1.0) and kernel.min() >= 0
        half = kernel.shape[0] // 2
        ys, xs = np.mgrid[-half:half + 1, -half:half + 1]
        assert kernel[np.hypot(xs, ys) > radius + 0.71].sum() == 0  # nothing beyond the disc
        assert kernel[half, half] == pytest.approx(1 / (np.pi * radius**2), rel=0.05)  # uniform: pixel / disc area
    assert disc_kernel(DEFOCUS_RADIUS_PX[0]).max() > 0.9  # the mildest defocus barely leaves the pixel
    image = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    out = defocus(image, 1.5)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert out.std() < 0.6 * image.std()  # smooths the noise
    flat = np.full((20, 20, 3), 0.3, np.float32)
    np.testing.assert_allclose(defocus(flat, 2.0), flat, atol=1e-6)  # keeps the mean, borders included


def test_wide_defocus_by_fft_equals_the_direct_convolution():
    import torch
    import torch.nn.functional as F

    image = np.random.default_rng(1).random((60, 70, 3)).astype(np.float32)
    kernel = torch.from_numpy(disc_kernel(9.0)).float()
    half = kernel.shape[0] // 2
    source = F.pad(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], (half,) * 4, mode="reflect")
    direct = F.conv2d(source, kernel.expand(3, 1, -1, -1), groups=3)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(defocus(image, 9.0), direct, atol=1e-5)


def test_log_uniform_lengths_span_the_range_and_leave_the_rest_alone():
    from nafft.data.synth.motion import LOG_UNIFORM_MOTION_PX

    lengths = np.array([motion_length(np.random.default_rng(i), 1.0, 0.0, 0.0, 1.0, np.random.default_rng(-i - 1 + 10**6))
                        for i in range(3000)])
    assert LOG_UNIFORM_MOTION_PX[0] <= lengths.min() and lengths.max() <= LOG_UNIFORM_MOTION_PX[1]
    logs = np.log(lengths)
    assert np.median(logs) == pytest.approx(np.mean(np.log(LOG_UNIFORM_MOTION_PX)), abs=0.15)
    assert (lengths > 17).mean() == pytest.approx(np.log(48 / 17) / np.log(48), abs=0.04)  # long shakes well represented
    # a share of 0 draws nothing from the choice generator and gives the lengths of before
    for i in range(50):
        choice = np.random.default_rng(3)
        assert motion_length(np.random.default_rng(i), 1.0, 0.2, 0.1, 0.0, choice) == \
            motion_length(np.random.default_rng(i), 1.0, 0.2, 0.1)
        assert choice.random() == np.random.default_rng(3).random()
