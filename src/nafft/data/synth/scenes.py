"""Sharp scenes for synthetic pairs: procedural dead leaves, and random views of photographs.

Photographs come from a folder (any images, searched recursively) or from the sample photographs that ship inside
installed Python packages (`package_photos`): nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nafft.data.io import decode_image, to_float
from nafft.data.transforms import dihedral

# Photographs inside installed packages, by package: (folder inside the package, file names). scikit-image: its
# colour photographs and its grey photographs of real objects; left out are images that are already blurred
# (clock_motion), binary or synthetic (horse, chessboard, logo, phantom, color), documents (page, text) and
# microscopy or medical images (cell, ihc, microaneurysms, retina).
PACKAGE_PHOTOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "skimage": ("data", (
        "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
        "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
        "rocket.jpg")),
    "sklearn": ("datasets/images", ("china.jpg", "flower.jpg")),
    "matplotlib": ("mpl-data/sample_data", ("grace_hopper.jpg",)),
}

# Photo crops are down-scaled by at most this factor (never up-scaled), so that textures appear at several scales
# and a soft full-resolution photograph still yields crisp training targets.
MAX_DOWNSCALE = 4.0


def _package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_photos(packages: tuple[str, ...] = tuple(PACKAGE_PHOTOS)) -> list[Path]:
    """The sample photographs of the installed packages among `packages` (none for a package not installed)."""
    paths = []
    for package in packages:
        root = _package_folder(package)
        if root is None:
            continue
        folder, names = PACKAGE_PHOTOS[package]
        paths += [root / folder / name for name in names if (root / folder / name).is_file()]
    return paths


def skimage_photo_paths() -> list[Path]:
    """The scikit-image photographs present on disk (empty if scikit-image is not installed)."""
    return package_photos(("skimage",))


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
        r_min, r_max: radius range in pixels; r_max defaults to size / 2 (at least 2 r_min).
        exponent: of the power law p(r) ~ r^-exponent (3 is scale-invariant; smaller favours large shapes).
        coverage: expected number of shapes over each pixel (the rest shows a textured background).
        supersample: samples per pixel along each axis (anti-aliasing).
    """
    r_max = float(r_max or max(size / 2, 2 * r_min))  # a range even for the smallest sizes
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


@functools.lru_cache(maxsize=32)
def load_photo(path: str) -> np.ndarray:
    """The pixels of a photograph as decoded (uint8 or uint16, (H, W, 3)); the last 32 stay cached."""
    rgb, _, _ = decode_image(path)
    return rgb


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, C, H, W) tensor with reflected borders (truncated at 3 sigma)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps = (taps / taps.sum()).to(image.dtype)
    channels = image.shape[1]
    image = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    image = F.conv2d(image, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(image, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def random_photo_crop(photo: np.ndarray, size: int, rng: np.random.Generator, margin: int = 0,
                      downscale: tuple[float, float] = (1.0, MAX_DOWNSCALE)) -> np.ndarray:
    """A random square view of `photo` (uint8/uint16 or float in [0, 1], (H, W, 3)): `size` output pixels
    across the central square, down-scaled by a factor drawn log-uniformly from `downscale` (least, most; by
    default 1 to `MAX_DOWNSCALE`) as far as the photo allows
    (anti-aliased: area averaging by the integer part of the factor, then a Gaussian; never up-scaled),
    randomly flipped/rotated, plus `margin` pixels of surroundings on every side (mirrored beyond the photo's
    border); float32 (size + 2 margin, size + 2 margin, 3).

    The central square does not depend on `margin` (up to size // 2 + 32).
    """
    height, width = photo.shape[:2]
    min_scale = max(size / min(height, width), 1 / downscale[1])  # output pixels per photo pixel
    max_scale = max(min_scale, 1 / downscale[0])
    scale = math.exp(rng.uniform(math.log(min_scale), math.log(max_scale)))
    half = size / scale / 2
    centre_y = rng.uniform(half, max(height - half, half))
    centre_x = rng.uniform(half, max(width - half, half))
    transform = int(rng.integers(0, 8))

    # The photo window depends only on `size` (not on `margin`), so the centre is computed identically.
    pool = max(int(1 / scale), 1) if scale < 0.5 else 1  # area-average pool x pool blocks first
    sigma = 0.5 * math.sqrt(max(1 / (scale * pool) ** 2 - 1, 0.0))  # for the rest of the down-scaling
    reach = (size / 2 + size // 2 + 32) / scale + pool * (math.ceil(3 * sigma) + 3)
    y0, y1 = int(math.floor(centre_y - reach)), int(math.ceil(centre_y + reach))
    x0, x1 = int(math.floor(centre_x - reach)), int(math.ceil(centre_x + reach))
    y1, x1 = y1 + (-(y1 - y0)) % pool, x1 + (-(x1 - x0)) % pool  # whole pooling blocks
    window = photo[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    pad = ((max(-y0, 0), max(y1 - height, 0)), (max(-x0, 0), max(x1 - width, 0)), (0, 0))
    if any(sum(p) for p in pad):
        window = np.pad(window, pad, mode="symmetric")
    window = to_float(window) if window.dtype in (np.uint8, np.uint16) else window
    source = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1), dtype=np.float32))[None]
    if pool > 1:
        source = F.avg_pool2d(source, pool)
    if sigma > 0:
        source = _gaussian_blur(source, sigma)
    side = size + 2 * margin
    offsets = (np.arange(side) + 0.5 - side / 2) / scale  # photo pixels from the centre
    # pixel edges of the (pooled) window at -1 and 1 (align_corners=False)
    gx = (2 * (centre_x + offsets - x0) / (x1 - x0)) - 1
    gy = (2 * (centre_y + offsets - y0) / (y1 - y0)) - 1
    grid = np.stack(np.broadcast_arrays(gx[None, :], gy[:, None]), axis=-1)[None].astype(np.float32)
    out = F.grid_sample(source, torch.from_numpy(grid), mode="bicubic", padding_mode="reflection",
                        align_corners=False)[0]
    out = out.clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(dihedral(out, transform), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ depth of field


def focus_mask(rng: np.random.Generator, size: int, margin: int, knots: int = 4) -> np.ndarray:
    """Where a scene is out of focus, float32 (size + 2 margin, size + 2 margin) in [0, 1]: the whole view (a
    third of the draws) or the regions where a smooth random field, bilinear over a knot grid spanning the central
    square, passes a random level, with soft edges. The central square does not depend on `margin` (the field
    is held constant beyond the square's border)."""
    whole, level = rng.random(), rng.uniform(0.3, 0.7)
    softness = rng.uniform(2.0, 8.0) * knots / size  # field units over which the edge fades: ~4-16+ pixels
    grid = rng.random((knots + 1, knots + 1))
    side = size + 2 * margin
    if whole < 1 / 3:
        return np.ones((side, side), np.float32)
    position = np.clip((np.arange(side) + 0.5 - margin) / size, 0.0, 1.0) * knots  # knot units, clamped outside
    lower = np.minimum(np.floor(position).astype(np.int64), knots - 1)
    frac = position - lower
    rows = grid[lower] * (1 - frac)[:, None] + grid[lower + 1] * frac[:, None]
    field = rows[:, lower] * (1 - frac) + rows[:, lower + 1] * frac
    return np.clip((field - level) / softness + 0.5, 0.0, 1.0).astype(np.float32)


def depth_of_field(canvas: np.ndarray, mask: np.ndarray, radius: float) -> np.ndarray:
    """`canvas` (linear light, (H, W, 3)) blurred by an out-of-focus disc of `radius` pixels where `mask` is 1,
    unchanged where it is 0, blended in between."""
    from nafft.data.synth.motion import defocus

    blurred = defocus(canvas, radius)
    return canvas + mask[..., None] * (blurred - canvas)


def bokeh_highlights(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`canvas` (linear light) with bright points where it will be out of focus (`mask` > 0.5): its brightest
    0.2-1% of those pixels times 2-8, and up to 40 single-pixel point lights of 4-40x full scale, so that the
    defocus that follows turns them into the bright discs of real bokeh (clipped at 1 later, as a sensor
    would). A copy; pixels in focus are unchanged."""
    out = canvas.copy()
    behind = mask > 0.5
    if not behind.any():
        return out
    luminance = canvas.mean(axis=2)
    share, gain = rng.uniform(0.002, 0.01), rng.uniform(2.0, 8.0)
    bright = behind & (luminance >= np.quantile(luminance[behind], 1.0 - share))
    out[bright] *= gain
    ys, xs = np.nonzero(behind)
    count = int(rng.integers(0, 41))
    chosen = rng.integers(0, len(ys), count)
    out[ys[chosen], xs[chosen]] = rng.uniform(4.0, 40.0, (count, 1)) * rng.uniform(0.6, 1.0, (count, 3))
    return out
