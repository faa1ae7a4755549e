"""Camera motion and the blur it makes.

- `random_trajectory`: a smooth random camera path (translation with curvature, acceleration and shake, plus a
  small roll about the image centre), sampled finely enough that no pixel moves more than 0.75 px between frames.
  `motion_length` draws its length from a mixture: pairs with almost no motion, the everyday range (median
  `MEDIAN_MOTION_PX`), and long hand-held shakes (`LONG_MOTION_PX`).
- `gopro_blur`: what the GoPro data set did: the scene warped to every position of the path (`grid_sample`) and
  the frames averaged (in linear light; the caller linearises). The sharp image is the middle frame.
- `motion_kernel` + `kernel_blur`: the translation part of a path as a kernel, convolved (FFT).
- `shake_kernel`: an independent family of camera-shake kernels (a random walk with inertia, random acceleration
  and occasional jerks, in the manner of Boracchi and Foi, IEEE TIP 2012), centred on their centre of mass; the
  evaluation generator, never used to make training data.
- `disc_kernel` + `defocus`: mild out-of-focus blur (an anti-aliased disc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEDIAN_MOTION_PX = 6.0
LONG_MOTION_PX = (20.0, 40.0)
STILL_MOTION_PX = 1.0
DEFOCUS_RADIUS_PX = (0.5, 2.0)
DEPTH_OF_FIELD_RADIUS_PX = (1.0, 4.0)
LOG_UNIFORM_MOTION_PX = (1.0, 48.0)
SHAKE_EXTENT_PX = (3.0, 35.0)


@dataclass
class Trajectory:
    """Camera motion over the exposure, relative to the middle (sharp) instant.

    Attributes:
        shifts: (n, 2) image translation (dx, dy) in pixels at n evenly spaced instants.
        angles: (n,) roll in radians about the image centre at the same instants.
    """

    shifts: np.ndarray
    angles: np.ndarray

    @property
    def length(self) -> float:
        """Path length of the translation in pixels."""
        return float(np.linalg.norm(np.diff(self.shifts, axis=0), axis=1).sum())


def motion_length(rng: np.random.Generator, strength: float = 1.0, long_motion: float = 0.0,
                  still: float = 0.0, log_uniform: float = 0.0,
                  choice_rng: np.random.Generator | None = None) -> float:
    """Path length in pixels from the mixture: with probability `still` at most `STILL_MOTION_PX` (half of those
    exactly 0), with probability `long_motion` uniform in `LONG_MOTION_PX`, otherwise log-normal with median
    `MEDIAN_MOTION_PX` (capped at 6x the median), or, for a share `log_uniform` of these, log-uniform in
    `LOG_UNIFORM_MOTION_PX`; all but the still ones times `strength`.

    Every call draws the same numbers from `rng` whatever the probabilities, so changing them changes which kind
    a pair gets, not the rest of its randomness; the log-uniform choice and length come from `choice_rng` (needed
    when `log_uniform` > 0).
    """
    u, half, sub_pixel = rng.random(), rng.random(), rng.uniform(0.0, STILL_MOTION_PX)
    long = rng.uniform(*LONG_MOTION_PX)
    usual = min(MEDIAN_MOTION_PX * rng.lognormal(0.0, 0.55), 6 * MEDIAN_MOTION_PX)
    if u < still:
        return 0.0 if half < 0.5 else sub_pixel
    if u < still + long_motion:
        return strength * long
    if log_uniform > 0 and choice_rng.random() < log_uniform:
        return strength * math.exp(choice_rng.uniform(*np.log(LOG_UNIFORM_MOTION_PX)))
    return strength * usual


def random_trajectory(rng: np.random.Generator, strength: float = 1.0, size: int = 256,
                      length: float | None = None) -> Trajectory:
    """A smooth random camera trajectory for an image of `size` pixels.

    Heading turns smoothly (curvature and its change), speed changes (acceleration), a small perpendicular shake
    is added, and the image rolls by a small angle (median ~0.3 degrees x `strength`) about its centre.

    Args:
        rng: the only source of randomness.
        strength: scales the drawn length and the roll.
        size: image side (the roll's displacement at the corners counts towards the number of frames).
        length: path length of the translation in pixels; default: `motion_length(rng, strength)`.
    """
    if length is None:
        length = motion_length(rng, strength)
    heading0 = rng.uniform(0.0, 2 * math.pi)
    turn1 = rng.normal(0.0, 1.2)
    turn2 = rng.normal(0.0, 2.0)
    accel = rng.uniform(-0.7, 0.7)
    shake_amp = rng.uniform(0.0, 0.3)
    shake_freq = rng.uniform(1.0, 4.0)
    shake_phase = rng.uniform(0.0, 2 * math.pi)
    roll = rng.normal(0.0, 0.0075) * strength if length > STILL_MOTION_PX else 0.0  # radians over the exposure

    fine = np.linspace(0.0, 1.0, 513)
    c = fine - 0.5
    heading = heading0 + turn1 * c + turn2 * c**2
    speed = 1.0 + accel * c
    wobble = shake_amp * np.sin(2 * math.pi * shake_freq * fine + shake_phase)
    vx = speed * np.cos(heading) - wobble * np.sin(heading)
    vy = speed * np.sin(heading) + wobble * np.cos(heading)
    path = np.concatenate([[[0.0, 0.0]], np.cumsum(np.stack([vx, vy], 1)[:-1] + np.stack([vx, vy], 1)[1:], 0) / 2])
    arc = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    path *= length / max(arc, 1e-12)
    path -= path[len(fine) // 2]
    angles = roll * c

    # enough frames that no pixel moves more than 0.75 px between two of them (at most 121)
    speed_max = np.linalg.norm(np.diff(path, axis=0), axis=1).max() * (len(fine) - 1)  # px per exposure
    extent = speed_max + abs(roll) * size / math.sqrt(2)
    frames = int(min(max(math.ceil(extent / 0.75) + 1, 9), 121)) | 1  # odd: the middle instant is a frame
    t = np.linspace(0.0, 1.0, frames)
    shifts = np.stack([np.interp(t, fine, path[:, 0]), np.interp(t, fine, path[:, 1])], axis=1)
    return Trajectory(shifts=shifts, angles=np.interp(t, fine, angles))


def trajectory_margin(trajectory: Trajectory, size: int) -> int:
    """Pixels of surroundings a `size` x `size` view needs on every side to be blurred along `trajectory`."""
    reach = np.abs(trajectory.shifts).max() + np.abs(trajectory.angles).max() * size
    return int(math.ceil(reach)) + 3


def gopro_blur(canvas: np.ndarray, trajectory: Trajectory, size: int) -> np.ndarray:
    """Average of `canvas` (float (C, C, 3), linear light) seen along `trajectory`, for the centre
    `size` x `size` window; float32 (size, size, 3) linear light."""
    side = canvas.shape[0]
    margin = (side - size) // 2
    centre = (side - 1) / 2
    ys, xs = np.mgrid[margin:margin + size, margin:margin + size].astype(np.float64)
    source = torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32))[None]
    total = np.zeros((3, size, size))
    chunk = 16
    n = len(trajectory.angles)
    for start in range(0, n, chunk):
        grids = []
        for (dx, dy), angle in zip(trajectory.shifts[start:start + chunk], trajectory.angles[start:start + chunk]):
            # frame i shows the scene moved by (dx, dy) and rolled by angle: sample the inverse transform
            x = xs - centre - dx
            y = ys - centre - dy
            cos_a, sin_a = math.cos(angle), math.sin(angle)
            sample_x = cos_a * x + sin_a * y + centre
            sample_y = -sin_a * x + cos_a * y + centre
            grids.append(np.stack([(2 * sample_x + 1) / side - 1, (2 * sample_y + 1) / side - 1], axis=-1))
        grid = torch.from_numpy(np.stack(grids).astype(np.float32))
        frames = F.grid_sample(source.expand(len(grids), -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=False)
        # numpy sums along the frame axis in a fixed order: results do not depend on torch's threads
        total += frames.numpy().sum(axis=0, dtype=np.float64)
    return (total / n).transpose(1, 2, 0).astype(np.float32)


def motion_kernel(trajectory: Trajectory) -> np.ndarray:
    """The translation of `trajectory` rasterised (bilinear splats) into a normalised kernel, float64 (K, K),
    centred on the middle instant."""
    reach = int(math.ceil(np.abs(trajectory.shifts).max())) + 1
    kernel = _splat(trajectory.shifts + reach, 2 * reach + 1)
    return kernel / kernel.sum()


def kernel_blur(canvas: np.ndarray, kernel: np.ndarray, size: int) -> np.ndarray:
    """`canvas` (float (C, C, 3), linear light) convolved with `kernel`, centre `size` x `size` window."""
    side = canvas.shape[0]
    k = kernel.shape[0]
    shape = (side + k, side + k)
    spectrum = np.fft.rfft2(canvas.astype(np.float64), s=shape, axes=(0, 1))
    spectrum *= np.fft.rfft2(kernel, s=shape)[..., None]
    full = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    margin = (side - size) // 2
    half = k // 2
    return full[margin + half:margin + half + size, margin + half:margin + half + size].astype(np.float32)


def _splat(points: np.ndarray, side: int) -> np.ndarray:
    """Bilinear splats of (n, 2) points (x, y), already offset into [0, side - 1), summed on a (side, side) grid."""
    kernel = np.zeros((side, side))
    x0, y0 = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    fx, fy = points[:, 0] - x0, points[:, 1] - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), w)
    return kernel


def shake_kernel(rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random camera-shake kernel, float64 (K, K), normalised, centred on its centre of mass.

    The path is a random walk of 1,000 steps: the velocity keeps its direction (inertia), gets a Gaussian
    acceleration of random magnitude, is pulled back towards the start, and now and then receives a jerk in a
    random direction; its largest extent is drawn log-uniformly from `SHAKE_EXTENT_PX` (times `strength`). The
    exposure covers a random 60-100% of the walk.
    """
    steps = 1000
    jitter = rng.uniform(0.0, 0.6)  # random acceleration, relative to the step
    pull = rng.uniform(0.0, 0.01)  # centripetal
    jerk_rate = rng.uniform(0.0, 0.01)  # per step
    extent = strength * math.exp(rng.uniform(*np.log(SHAKE_EXTENT_PX)))
    exposure = rng.uniform(0.6, 1.0)
    heading = rng.uniform(0.0, 2 * math.pi)
    velocity = complex(math.cos(heading), math.sin(heading))
    position = 0j
    path = np.empty(steps, complex)
    kicks = rng.standard_normal((steps, 2))
    jerks = rng.random(steps) < jerk_rate
    jerk_dirs = rng.uniform(0.0, 2 * math.pi, steps)
    for i in range(steps):
        velocity += jitter * complex(*kicks[i]) - pull * position
        if jerks[i]:
            velocity += 2.0 * complex(math.cos(jerk_dirs[i]), math.sin(jerk_dirs[i]))
        velocity /= max(abs(velocity), 1e-12)  # unit speed: the path length is steps
        position += velocity
        path[i] = position
    path = path[: max(int(exposure * steps), 2)]
    points = np.stack([path.real, path.imag], axis=1)
    points -= points.mean(axis=0)
    span = max(float(np.ptp(points, axis=0).max()), 1e-12)
    points *= extent / span
    reach = int(math.ceil(np.abs(points).max())) + 2
    kernel = _splat(points + reach, 2 * reach + 1)
    kernel /= kernel.sum()
    # centre of mass onto the central pixel (sub-pixel shift by bilinear resampling of the splats)
    ys, xs = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    cy, cx = (kernel * ys).sum() - reach, (kernel * xs).sum() - reach
    kernel = _splat(points + reach - [cx, cy], 2 * reach + 1)
    return kernel / kernel.sum()


def disc_kernel(radius: float) -> np.ndarray:
    """An anti-aliased disc of `radius` pixels (8x8 supersampled), normalised, float64 (K, K)."""
    reach = int(math.ceil(radius)) + 1
    sub = (np.arange((2 * reach + 1) * 8) + 0.5) / 8 - reach - 0.5
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2 <= radius**2).astype(np.float64)
    kernel = inside.reshape(2 * reach + 1, 8, 2 * reach + 1, 8).sum(axis=(1, 3))
    return kernel / kernel.sum()


def defocus(image: np.ndarray, radius: float) -> np.ndarray:
    """(H, W, C) convolved with `disc_kernel(radius)`, borders reflected, same size and dtype (direct
    convolution up to radius 6, FFT beyond, where a direct one would cost hundreds of taps per pixel)."""
    kernel = torch.from_numpy(disc_kernel(radius)).float()
    half = kernel.shape[0] // 2
    channels = image.shape[2]
    source = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]
    source = F.pad(source, (half, half, half, half), mode="reflect")
    if radius <= 6:
        out = F.conv2d(source, kernel.expand(channels, 1, -1, -1), groups=channels)[0]
    else:
        height, width = source.shape[-2:]
        spectrum = torch.fft.rfft2(source[0].double()) * torch.fft.rfft2(kernel.double(), s=(height, width))
        # circular convolution: output pixel (y, x) sums the kernel around (y - half, x - half); the valid part
        out = torch.fft.irfft2(spectrum, s=(height, width))[:, 2 * half:, 2 * half:]
    return out.numpy().transpose(1, 2, 0).astype(image.dtype)
