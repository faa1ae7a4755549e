"""Synthetic blurred/sharp training pairs, made here from nothing (no downloads).

Sharp sources:
- `deadleaves`: a dead-leaves image - random occluding discs, ellipses, rectangles and triangles whose sizes follow
  a power law (p(r) ~ r^-3, the scale-invariant case), HSV colours with mostly low saturation, and inside the
  shapes flat colour, gradients, stripes of every frequency or 1/f noise, so that edges and textures appear at all
  scales. Rendered 2x2 supersampled for anti-aliased edges.
- `skimage`: random crops, scales and flips/rotations of the photographs shipped inside scikit-image (read from
  the installed package folder; never downloaded).
- a folder: the same random crops of any sharp images.

Blur (each pair works on a canvas larger than the output by the largest displacement, then keeps the centre):
- `gopro`, what the GoPro data set did: a smooth random camera trajectory (translation with curvature,
  acceleration and shake, plus a small roll about the image centre); the sharp image is warped to every position
  (`grid_sample`, at least one sub-frame per 0.75 px of motion) and the frames are averaged in linear light
  (gamma 2.2), then gamma-encoded. The sharp image is the middle frame, as in GoPro.
- `kernel`: the translation part of such a trajectory rasterised into a motion kernel, convolved (FFT) in linear
  light.
Then signal-dependent sensor noise and 8-bit quantisation. `strength` scales the motion length (default median
about 11 px), `noise` the noise level.

Every pair is a pure function of (settings, seed, pair number): the same arguments give byte-identical files,
whatever the number of workers, and pair i does not depend on how many pairs are made.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nafft.data.io import atomic_write_bytes, decode_image, list_images, to_float, write_image
from nafft.data.transforms import dihedral
from nafft.errors import UserError

SOURCES = ("deadleaves", "skimage")
BLURS = ("gopro", "kernel")
GAMMA = 2.2
MANIFEST = "synth.json"
# Photographs inside scikit-image's data folder (no pooch download needed). Left out: already blurred
# (clock_motion), binary or synthetic (horse, chessboard, logo, phantom), documents (page, text), microscopy.
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg",
)
_MEDIAN_MOTION_PX = 6.0


class SynthError(UserError):
    """Synthesis settings or an output folder that cannot be used."""


@dataclass(frozen=True)
class SynthSettings:
    """Everything that determines the pairs (stored as OUT/synth.json)."""

    source: str = "deadleaves"
    size: int = 256
    seed: int = 0
    blur: str = "gopro"
    strength: float = 1.0
    noise: float = 1.0

    def __post_init__(self):
        if self.size < 8:
            raise SynthError(f"size must be at least 8, got {self.size}")
        if self.seed < 0:
            raise SynthError(f"seed must be non-negative, got {self.seed}")
        if self.blur not in BLURS:
            raise SynthError(f"unknown blur '{self.blur}'; use one of {', '.join(BLURS)}")
        if not 0 <= self.strength <= 10:
            raise SynthError(f"strength must be in [0, 10], got {self.strength}")
        if not 0 <= self.noise <= 10:
            raise SynthError(f"noise must be in [0, 10], got {self.noise}")


@dataclass
class SynthPair:
    """One synthetic pair: uint8 (S, S, 3) images and what made them."""

    blur: np.ndarray
    sharp: np.ndarray
    psnr: float
    motion_px: float
    frames: int


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


# ------------------------------------------------------------------------------------------------ dead leaves


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _natural_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two related colours per shape: mostly desaturated, broad brightness."""
    hue = rng.random(n)
    sat = rng.beta(1.0, 3.0, n)
    val = 0.04 + 0.94 * rng.beta(1.6, 1.5, n)
    first = _hsv_to_rgb(hue, sat, val)
    hue2 = (hue + rng.normal(0.0, 0.06, n)) % 1.0
    sat2 = np.clip(sat + rng.normal(0.0, 0.15, n), 0.0, 1.0)
    val2 = np.clip(val + rng.normal(0.0, 0.3, n), 0.02, 1.0)
    return first, _hsv_to_rgb(hue2, sat2, val2)


def _upsample(knots: np.ndarray, cell: int, size: int) -> np.ndarray:
    """Bilinear interpolation of a knot grid spaced `cell` pixels apart onto (size, size) pixel centres."""
    position = (np.arange(size) + 0.5) / cell
    lower = np.floor(position).astype(np.int64)
    frac = position - lower
    rows = knots[lower] * (1 - frac)[:, None] + knots[lower + 1] * frac[:, None]  # (size, knots)
    return rows[:, lower] * (1 - frac) + rows[:, lower + 1] * frac


def _noise_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-octave value noise in [0, 1] with a roughly 1/f spectrum, float32 (size, size)."""
    field = rng.random((size, size))
    for cell in (2, 4, 8, 16, 32):
        field += math.sqrt(cell) * _upsample(rng.random((size // cell + 2, size // cell + 2)), cell, size)
    field -= field.min()
    return (field / max(float(field.max()), 1e-12)).astype(np.float32)


def dead_leaves(size: int, rng: np.random.Generator, margin: int = 0, r_min: float = 4.0,
                r_max: float | None = None, exponent: float = 2.5, coverage: float = 2.5,
                supersample: int = 2) -> np.ndarray:
    """A textured dead-leaves image, float32 (size + 2 margin, size + 2 margin, 3) sRGB in [0, 1].

    The shapes are drawn in a fixed window around the central `size` x `size` square, so the centre does not
    depend on `margin` (up to size // 2 + 32; farther out only the background remains).

    Args:
        size: side of the central square in pixels.
        rng: the only source of randomness.
        margin: extra pixels rendered on every side.
        r_min, r_max: radius range in pixels; r_max defaults to size / 2.
        exponent: of the power law p(r) ~ r^-exponent (3 is scale-invariant; smaller favours large shapes).
        coverage: expected number of shapes over each pixel (the rest shows a textured background).
        supersample: samples per pixel along each axis (anti-aliasing).
    """
    r_max = float(r_max or size / 2)
    world = size // 2 + 32  # shapes live in [-world, size + world)^2
    extent = size + 2 * world
    ss = supersample
    side = size + 2 * margin
    grid = side * ss
    e = 1.0 - exponent  # p(r) ~ r^-exponent on [r_min, r_max], sampled by inverting its CDF
    norm = (r_min**e - r_max**e) / -e
    mean_r2 = (math.log(r_max / r_min) if exponent == 3 else (r_max ** (3 - exponent) - r_min ** (3 - exponent))
               / (3 - exponent)) / norm
    count = int(min(100000, coverage * extent * extent / (math.pi * mean_r2 * 0.75)))
    u = rng.random(count)
    radius = (r_min**e - u * (r_min**e - r_max**e)) ** (1 / e)
    cx = rng.uniform(-world, size + world, count)  # coordinates of the central square
    cy = rng.uniform(-world, size + world, count)
    kind = rng.choice(4, count, p=[0.35, 0.25, 0.22, 0.18])  # disc, ellipse, rectangle, triangle
    aspect = np.where(kind == 0, 1.0, rng.uniform(0.25, 1.0, count))
    theta = rng.uniform(0.0, math.pi, count)
    c1, c2 = _natural_colours(rng, count + 1)  # the last one is the background's
    texture = rng.choice(4, count + 1, p=[0.35, 0.25, 0.2, 0.2])  # flat, gradient, stripes, noise
    amp = rng.uniform(0.3, 1.0, count + 1)
    freq = np.exp(rng.uniform(math.log(1 / 48), math.log(1 / 2.5), count + 1))  # cycles per pixel
    tex_angle = rng.uniform(0.0, 2 * math.pi, count + 1)
    phase = rng.uniform(0.0, 2 * math.pi, count + 1)
    noise = _noise_field(rng, extent)
    if margin > world:
        noise = np.pad(noise, margin - world, mode="reflect")
    offset = max(world - margin, 0)
    noise = noise[offset:offset + side, offset:offset + side]
    noise = np.repeat(np.repeat(noise, ss, axis=0), ss, axis=1)

    # Every shape tests the samples of its bounding box; the front-most shape (largest index) wins each sample.
    bound = radius * np.where(kind == 2, np.sqrt(1 + aspect**2), 1.0)
    # sample (px, py) of the canvas grid sits at ((px + 0.5) / ss - margin, ...), exactly, in these coordinates
    x0 = np.clip(np.floor((cx - bound) * ss) + margin * ss, 0, grid).astype(np.int64)
    x1 = np.clip(np.ceil((cx + bound) * ss) + margin * ss, 0, grid).astype(np.int64)
    y0 = np.clip(np.floor((cy - bound) * ss) + margin * ss, 0, grid).astype(np.int64)
    y1 = np.clip(np.ceil((cy + bound) * ss) + margin * ss, 0, grid).astype(np.int64)
    width, height = x1 - x0, y1 - y0
    counts = np.where((width > 0) & (height > 0), width * height, 0)
    ids = np.repeat(np.arange(count), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    row, col = np.divmod(local, width[ids])
    px = x0[ids] + col
    py = y0[ids] + row
    shape = np.stack([cx, cy, np.cos(theta), np.sin(theta), 1 / radius, 1 / (radius * aspect)], axis=1)
    shape = shape.astype(np.float32)[ids]  # (E, 6)
    dx = ((px.astype(np.float32) + 0.5) / ss - margin) - shape[:, 0]
    dy = ((py.astype(np.float32) + 0.5) / ss - margin) - shape[:, 1]
    along = (shape[:, 2] * dx + shape[:, 3] * dy) * shape[:, 4]
    across = (shape[:, 2] * dy - shape[:, 3] * dx) * shape[:, 5]
    k = kind[ids]
    inside = np.where(k <= 1, along**2 + across**2 <= 1.0, (np.abs(along) <= 1.0) & (np.abs(across) <= 1.0))
    tri = k == 3
    if tri.any():
        # three half-planes 120 degrees apart at distance 1/2 (unit circumradius)
        a, b = along[tri], across[tri]
        inside_tri = np.ones(a.shape, bool)
        for angle in (0.0, 2 * math.pi / 3, 4 * math.pi / 3):
            inside_tri &= a * math.cos(angle) + b * math.sin(angle) <= 0.5
        inside[tri] = inside_tri
    labels = np.full(grid * grid, -1, np.int64)
    np.maximum.at(labels, (py * grid + px)[inside], ids[inside])
    labels[labels < 0] = count  # background

    centre = np.append(np.stack([cx, cy], 1), [[size / 2, size / 2]], axis=0)
    scale = np.append(radius, size / 2)
    table = np.concatenate([
        c1, c2 - c1, centre, np.cos(tex_angle)[:, None], np.sin(tex_angle)[:, None],
        (amp * np.where(texture == 1, 0.5 / scale, 0.0))[:, None],  # gradient slope
        (amp * (texture == 2))[:, None], (2 * math.pi * freq)[:, None], phase[:, None],  # stripes
        (amp * (texture == 3))[:, None],  # noise
    ], axis=1).astype(np.float32)[labels]  # (G*G, 15)
    ys, xs = np.divmod(np.arange(grid * grid, dtype=np.int64), grid)
    proj = ((xs.astype(np.float32) + 0.5) / ss - margin - table[:, 6]) * table[:, 8] + \
        ((ys.astype(np.float32) + 0.5) / ss - margin - table[:, 7]) * table[:, 9]
    weight = (table[:, 10] * proj + 0.5 * table[:, 11] * np.sin(table[:, 12] * proj + table[:, 13])
              + table[:, 14] * (noise.ravel() - 0.5))
    flat = (table[:, 10] == 0) & (table[:, 11] == 0) & (table[:, 14] == 0)
    weight = np.where(flat, 0.0, np.clip(weight + 0.5, 0.0, 1.0))
    image = table[:, 0:3] + table[:, 3:6] * weight[:, None]
    image = image.reshape(side, ss, side, ss, 3).mean(axis=(1, 3))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------ photographs


def skimage_photo_paths() -> list[Path]:
    """The scikit-image photographs present on disk (empty if scikit-image is not installed)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [folder / name for name in SKIMAGE_PHOTOS if (folder / name).is_file()]


@functools.lru_cache(maxsize=8)
def _load_photo(path: str) -> np.ndarray:
    rgb, _, _ = decode_image(path)
    return to_float(rgb)


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (H, W, C) with reflected borders (truncated at 3 sigma)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(image, pad, mode="reflect")
        length = image.shape[axis]
        image = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(taps))
    return image


def random_photo_crop(photo: np.ndarray, size: int, rng: np.random.Generator, margin: int = 0) -> np.ndarray:
    """A random square view of `photo`: `size` output pixels across the central square (downscaled by up to 2x
    when the photo allows, antialiased), randomly flipped/rotated, plus `margin` pixels of surroundings on every
    side (mirrored beyond the photo's border); float32 (size + 2 margin, size + 2 margin, 3).

    The central square does not depend on `margin` (up to size // 2 + 32).
    """
    height, width = photo.shape[:2]
    min_scale = max(size / min(height, width), 0.5)  # output pixels per photo pixel
    max_scale = max(min_scale, 1.0)
    scale = math.exp(rng.uniform(math.log(min_scale), math.log(max_scale)))
    half = size / scale / 2
    centre_y = rng.uniform(half, max(height - half, half))
    centre_x = rng.uniform(half, max(width - half, half))
    transform = int(rng.integers(0, 8))

    # The photo window depends only on `size` (not on `margin`), so the centre is computed identically.
    sigma = 0.5 * math.sqrt(max(1 / scale**2 - 1, 0.0))
    reach = (size / 2 + size // 2 + 32) / scale + (math.ceil(3 * sigma) if sigma > 0 else 0) + 3
    y0, y1 = int(math.floor(centre_y - reach)), int(math.ceil(centre_y + reach))
    x0, x1 = int(math.floor(centre_x - reach)), int(math.ceil(centre_x + reach))
    window = photo[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    pad = ((max(-y0, 0), max(y1 - height, 0)), (max(-x0, 0), max(x1 - width, 0)), (0, 0))
    if any(sum(p) for p in pad):
        window = np.pad(window, pad, mode="symmetric")
    if sigma > 0:
        window = _gaussian_blur(window.astype(np.float64), sigma)
    side = size + 2 * margin
    offsets = (np.arange(side) + 0.5 - side / 2) / scale  # photo pixels from the centre
    gx = (2 * (centre_x + offsets - x0) / window.shape[1]) - 1  # pixel edges at -1 and 1 (align_corners=False)
    gy = (2 * (centre_y + offsets - y0) / window.shape[0]) - 1
    grid = np.stack(np.broadcast_arrays(gx[None, :], gy[:, None]), axis=-1)[None].astype(np.float32)
    source = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1), dtype=np.float32))[None]
    out = F.grid_sample(source, torch.from_numpy(grid), mode="bicubic", padding_mode="reflection",
                        align_corners=False)[0]
    out = out.clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(dihedral(out, transform), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ blur


def random_trajectory(rng: np.random.Generator, strength: float = 1.0, size: int = 256) -> Trajectory:
    """A smooth random camera trajectory; its translation has a median path length of ~11 px x `strength`.

    Heading turns smoothly (curvature and its change), speed changes (acceleration), a small perpendicular shake
    is added, and the image rolls by a small angle (median ~0.3 degrees x `strength`) about its centre.
    """
    length = strength * _MEDIAN_MOTION_PX * rng.lognormal(0.0, 0.55)
    length = min(length, 6 * _MEDIAN_MOTION_PX * max(strength, 1e-6))
    heading0 = rng.uniform(0.0, 2 * math.pi)
    turn1 = rng.normal(0.0, 1.2)
    turn2 = rng.normal(0.0, 2.0)
    accel = rng.uniform(-0.7, 0.7)
    shake_amp = rng.uniform(0.0, 0.3)
    shake_freq = rng.uniform(1.0, 4.0)
    shake_phase = rng.uniform(0.0, 2 * math.pi)
    roll = rng.normal(0.0, 0.0075) * strength  # radians over the exposure

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


def _margin(trajectory: Trajectory, size: int) -> int:
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
    side = 2 * reach + 1
    kernel = np.zeros((side, side))
    x = trajectory.shifts[:, 0] + reach
    y = trajectory.shifts[:, 1] + reach
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), w)
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


def add_noise_and_quantize(image: np.ndarray, rng: np.random.Generator, level: float = 1.0) -> np.ndarray:
    """Signal-dependent sensor noise (variance a*x + b^2, a and b random, scaled by `level`), then 8 bits."""
    if level > 0:
        shot = level**2 * math.exp(rng.uniform(math.log(1e-5), math.log(2e-4)))
        read = level * math.exp(rng.uniform(math.log(5e-4), math.log(3e-3)))
        sigma = np.sqrt(shot * np.clip(image, 0.0, 1.0) + read**2)
        image = image + sigma * rng.standard_normal(image.shape)
    return np.floor(np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


# ------------------------------------------------------------------------------------------------ pairs


def _source_paths(source: str) -> list[Path]:
    if source == "deadleaves":
        return []
    if source == "skimage":
        paths = skimage_photo_paths()
        if not paths:
            raise SynthError("source 'skimage' needs scikit-image installed (pip install 'nafft[skimage]')")
        return paths
    folder = Path(source)
    if not folder.is_dir():
        raise SynthError(f"unknown source '{source}': use deadleaves, skimage or an existing folder of images")
    paths = list_images(folder, recursive=True)
    if not paths:
        raise SynthError(f"{folder}: no images found")
    return paths


def make_pair(settings: SynthSettings, index: int, paths: list[Path] | None = None) -> SynthPair:
    """Pair number `index` of `settings` (a pure function of both; `paths` from the source, or looked up).

    The scene, the motion and the noise draw from separate generators, so the sharp image depends only on
    (source, size, seed, index): the same scenes appear blurred more or less with another strength or blur type.
    """
    paths = _source_paths(settings.source) if paths is None else paths
    scene_rng, motion_rng, noise_rng = (np.random.default_rng((settings.seed, int(index), s)) for s in range(3))
    size = settings.size
    trajectory = random_trajectory(motion_rng, settings.strength, size)
    if settings.blur == "kernel":
        kernel = motion_kernel(trajectory)
        margin = kernel.shape[0] // 2 + 3
    else:
        margin = _margin(trajectory, size)
    if paths:
        photo = _load_photo(str(paths[int(scene_rng.integers(0, len(paths)))]))
        canvas = random_photo_crop(photo, size, scene_rng, margin)
    else:
        canvas = dead_leaves(size, scene_rng, margin)
    linear = canvas.astype(np.float64) ** GAMMA
    if settings.blur == "kernel":
        blurred = kernel_blur(linear, kernel, size)
    else:
        blurred = gopro_blur(linear, trajectory, size)
    blurred = np.clip(blurred, 0.0, 1.0) ** (1 / GAMMA)
    blur = add_noise_and_quantize(blurred, noise_rng, settings.noise)
    sharp = add_noise_and_quantize(canvas[margin:margin + size, margin:margin + size], noise_rng, 0.0)
    return SynthPair(blur=blur, sharp=sharp, psnr=_psnr(blur, sharp), motion_px=trajectory.length,
                     frames=len(trajectory.angles))


def pair_name(index: int) -> str:
    return f"{index:06d}.png"


def _check_manifest(out: Path, settings: SynthSettings) -> None:
    record = {"nafft_synth": 1, **asdict(settings)}
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            existing = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise SynthError(f"{manifest}: unreadable ({exc}); remove it or choose another --out") from None
        if existing != record:
            changed = sorted(k for k in record.keys() | existing.keys() if record.get(k) != existing.get(k))
            raise SynthError(f"{out} holds pairs made with other settings (different {', '.join(changed)}); "
                             "choose another --out")
    else:
        if any((out / "blur").glob("*.png")) or any((out / "sharp").glob("*.png")):
            raise SynthError(f"{out} already holds images not made by nafft synth; choose another --out")
        atomic_write_bytes(manifest, (json.dumps(record, indent=2) + "\n").encode())


@dataclass
class SynthResult:
    index: int
    path: Path
    psnr: float | None  # None when the pair was already there
    motion_px: float | None


def _worker_init() -> None:
    torch.set_num_threads(1)


def _make_and_write(args) -> SynthResult:
    settings, index, paths, out = args
    name = pair_name(index)
    blur_path, sharp_path = out / "blur" / name, out / "sharp" / name
    if blur_path.is_file() and sharp_path.is_file():
        return SynthResult(index, blur_path, None, None)
    pair = make_pair(settings, index, paths)
    write_image(sharp_path, pair.sharp)
    write_image(blur_path, pair.blur)
    return SynthResult(index, blur_path, pair.psnr, pair.motion_px)


def iter_synthesize(out: str | os.PathLike, settings: SynthSettings, count: int,
                    workers: int = 1) -> Iterator[SynthResult]:
    """Write pairs 0..count-1 of `settings` to `out`/blur and `out`/sharp; returns an iterator of results in
    pair order (the work happens as it is consumed).

    Pairs already present are kept (a re-run resumes); `out` must be empty or made with the same settings.
    The checks run before this function returns.

    Raises:
        SynthError: bad count, unknown source, or an output folder made with other settings.
    """
    if count < 1:
        raise SynthError(f"count must be positive, got {count}")
    out = Path(out)
    paths = _source_paths(settings.source)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, settings)
    return _run(out, settings, count, workers, paths)


def _run(out: Path, settings: SynthSettings, count: int, workers: int, paths: list[Path]) -> Iterator[SynthResult]:
    tasks = [(settings, i, paths, out) for i in range(count)]
    if workers <= 1 or count == 1:
        yield from map(_make_and_write, tasks)
        return
    with multiprocessing.get_context().Pool(min(workers, count), initializer=_worker_init) as pool:
        yield from pool.imap(_make_and_write, tasks)


def synthesize_pairs(out: str | os.PathLike, source: str = "deadleaves", count: int = 100, size: int = 256,
                     seed: int = 0, blur: str = "gopro", strength: float = 1.0, noise: float = 1.0,
                     workers: int = 1, progress: Callable[[SynthResult], None] | None = None) -> list[Path]:
    """Make `count` synthetic pairs in `out`/blur and `out`/sharp (a flat pair folder); returns the blur paths.

    Args:
        out: output folder (created); must be empty or hold pairs of the same settings.
        source: "deadleaves", "skimage" or a folder of sharp images.
        count: number of pairs.
        size: side of the square images.
        seed: non-negative integer.
        blur: "gopro" (averaged warped frames) or "kernel" (motion-kernel convolution).
        strength: motion length multiplier (1.0: median ~11 px).
        noise: sensor noise multiplier (0 disables).
        workers: processes (results do not depend on it).
        progress: called with each `SynthResult` as it is done.

    Raises:
        SynthError: bad settings, unknown source, or an output folder made with other settings.
    """
    settings = SynthSettings(source=str(source), size=int(size), seed=int(seed), blur=blur,
                             strength=float(strength), noise=float(noise))
    paths = []
    for result in iter_synthesize(out, settings, count, workers):
        if progress is not None:
            progress(result)
        paths.append(result.path)
    return paths
