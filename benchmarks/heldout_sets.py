"""Held-out sets for judging a default model image by image, one pair folder per condition.

Written for the benchmark and independent of nafft's training generator where that matters: its own photograph
views (Lanczos down-scaling, 384x288), its own camera-shake family (hand tremor: a sum of random oscillations and
a drift, not nafft's camera paths nor its random-walk `shake` kernels), its own depth of field (a sharp subject in
front of a disc-blurred background with bokeh highlights) and the sRGB curve. Only the `nafft-*` sets use nafft's
generator (its camera path as a kernel, `nafft synth --blur kernel`), at given blur lengths.

Every image of every set comes from the same views of the photographs (view i of a photograph is a pure function of
the photograph and i), so two sets differ only in their condition. The blurred image is made in linear light
(sRGB decoded) from a view with room around it, noise is added in linear light, then sRGB and 8 bits.

    python benchmarks/heldout_sets.py data/default/photos/test --out data/default/heldout
    python benchmarks/heldout_sets.py data/default/photos/val --out data/default/heldout-val --views 6

Sets (folder names; `blur/`, `sharp/` and a `sets.json` describing each pair):
    sharp-low         sharp views, Gaussian noise of sigma 1.5/255 (a clean modern camera)
    sharp-noisy       sharp views, Poisson-Gaussian sensor noise at an everyday level
    sharp-dof-real    views of the photographs with real out-of-focus backgrounds, sigma 1.5/255
    sharp-dof-synth   a sharp subject before a disc-blurred background with bokeh highlights, in blur and target
    nafft-A-B         nafft's camera paths (as kernels), largest extent uniform in [A, B] px, low noise
    tremor-A-B        the benchmark's tremor kernels, largest extent uniform in [A, B] px, low noise
    shake-11-31       tremor kernels of 11-31 px, low noise; shake-11-31-jpeg80: the same saved as JPEG 80
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

VIEW_H, VIEW_W = 288, 384
MARGIN = 40  # room around a view for the largest blur (extent 33 px) and the depth of field
LOW_SIGMA = 1.5 / 255  # Gaussian noise of the low-noise sets, in sRGB values
EVERYDAY_NOISE = (1.2e-4, 4e-6)  # (shot, read) variances in linear light: about 4/255 at mid-grey after sRGB
LOW_NOISE = (1.2e-5, 4e-7)  # the blurred sets' sensor noise (about 1.3/255 at mid-grey)
BINS = ((0.5, 3.0), (3.0, 9.0), (9.0, 17.0), (17.0, 33.0))
# photographs with real out-of-focus backgrounds (held-out test photographs; the validation ones have none)
REAL_DOF = ("Kleiber", "flower", "chelsea", "coffee")


def srgb_decode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.clip(x, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


def load(path: Path) -> PILImage.Image:
    with PILImage.open(path) as im:
        return im.convert("RGB")


def view(photo: PILImage.Image, rng: np.random.Generator, whole: bool = False,
         scales: tuple[float, float] | None = None) -> np.ndarray:
    """A VIEW_H x VIEW_W view of `photo` with MARGIN pixels around it, float64 sRGB in [0, 1].

    The photograph is down-scaled (Lanczos) so that the view covers between a third and all of its shorter side
    (`whole`: between all and half, so that a subject's surroundings are in the view), never up-scaled; the
    margin is mirrored where the photograph ends. `scales` (low, high) overrides the down-scaling range (clipped to
    1..fit), e.g. (1, 2) for views near the photograph's full resolution, where its own softness shows.
    """
    width, height = photo.size
    fit = min(width / VIEW_W, height / VIEW_H)  # the largest down-scaling that still fills the view
    lowest, highest = (max(fit / 2, 1.0), fit) if whole else (max(fit / 3, 1.0), fit)
    if scales is not None:
        lowest, highest = max(scales[0], 1.0), max(min(scales[1], fit), 1.0)
    scale = math.exp(rng.uniform(math.log(min(lowest, highest)), math.log(highest)))
    size = (max(VIEW_W, round(width / scale)), max(VIEW_H, round(height / scale)))
    small = np.asarray(photo.resize(size, PILImage.Resampling.LANCZOS), dtype=np.float64) / 255.0
    y = int(rng.integers(0, size[1] - VIEW_H + 1))
    x = int(rng.integers(0, size[0] - VIEW_W + 1))
    padded = np.pad(small, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), mode="symmetric")
    return padded[y:y + VIEW_H + 2 * MARGIN, x:x + VIEW_W + 2 * MARGIN]


def centre(image: np.ndarray) -> np.ndarray:
    return image[MARGIN:MARGIN + VIEW_H, MARGIN:MARGIN + VIEW_W]


# ------------------------------------------------------------------------------------------------ kernels


def splat(points: np.ndarray) -> np.ndarray:
    """(n, 2) points (x, y) around 0 rasterised with bilinear weights into a normalised odd square kernel."""
    points = points - points.mean(axis=0)
    reach = int(math.ceil(np.abs(points).max())) + 2
    side = 2 * reach + 1
    kernel = np.zeros((side, side))
    shifted = points + reach
    x0, y0 = np.floor(shifted[:, 0]).astype(int), np.floor(shifted[:, 1]).astype(int)
    fx, fy = shifted[:, 0] - x0, shifted[:, 1] - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), w)
    return kernel / kernel.sum()


def scaled(points: np.ndarray, extent: float) -> np.ndarray:
    """`points` scaled so that their largest extent (x or y span) is `extent` pixels."""
    span = max(float(np.ptp(points, axis=0).max()), 1e-9)
    return points * (extent / span)


def tremor_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    """Hand tremor over an exposure: a drift plus 3-6 oscillations per axis (0.3-5 cycles per exposure, amplitude
    falling as 1/f), sampled at 4,000 instants."""
    t = np.linspace(0.0, 1.0, 4000)
    drift = rng.normal(0.0, 1.0, 2) * rng.uniform(0.0, 1.5)
    path = np.outer(t, drift)
    for axis in range(2):
        for _ in range(int(rng.integers(3, 7))):
            f = math.exp(rng.uniform(math.log(0.3), math.log(5.0)))
            path[:, axis] += rng.normal(0.0, 1.0) / f * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi))
    return splat(scaled(path, extent))


def nafft_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    """nafft's training camera path (`nafft.data.synth.motion.random_trajectory`) as a kernel, at `extent`."""
    from nafft.data.synth import motion

    trajectory = motion.random_trajectory(rng, 1.0, VIEW_W, length=max(extent, 1.0) * 1.3)
    return splat(scaled(trajectory.shifts, extent))


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(H, W, 3) convolved with `kernel` (FFT, circular; the margin absorbs the wrap-around)."""
    h, w = image.shape[:2]
    k = kernel.shape[0]
    padded = np.zeros((h, w))
    padded[:k, :k] = kernel
    padded = np.roll(padded, (-(k // 2), -(k // 2)), axis=(0, 1))
    spectrum = np.fft.rfft2(padded)
    return np.stack([np.fft.irfft2(np.fft.rfft2(image[..., c]) * spectrum, s=(h, w)) for c in range(3)], -1)


def disc(radius: float) -> np.ndarray:
    reach = int(math.ceil(radius)) + 1
    sub = (np.arange((2 * reach + 1) * 4) + 0.5) / 4 - reach - 0.5
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2 <= radius**2).astype(np.float64)
    kernel = inside.reshape(2 * reach + 1, 4, 2 * reach + 1, 4).sum(axis=(1, 3))
    return kernel / kernel.sum()


# ------------------------------------------------------------------------------------------------ conditions


def gaussian(encoded: np.ndarray, rng: np.random.Generator, sigma: float = LOW_SIGMA) -> np.ndarray:
    return encoded + rng.normal(0.0, sigma, encoded.shape)


def sensor(linear: np.ndarray, rng: np.random.Generator, noise: tuple[float, float]) -> np.ndarray:
    shot, read = noise
    linear = np.clip(linear, 0.0, 1.0)
    return linear + np.sqrt(shot * linear + read) * rng.standard_normal(linear.shape)


def synthetic_dof(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sharp elliptic subject (feathered edge) in front of the view's own content defocused by a disc of radius
    log-uniform in 3-24 px; the brightest background points are pushed to 2-8x full scale first, so that they
    become bright bokeh discs (clipped at 1 afterwards, as a sensor would)."""
    h, w = linear.shape[:2]
    radius = math.exp(rng.uniform(math.log(3.0), math.log(24.0)))
    background = linear.copy()
    luminance = background.mean(axis=2)
    spots = luminance > np.quantile(luminance, 0.995)
    background[spots] *= rng.uniform(2.0, 8.0)
    for _ in range(int(rng.integers(5, 30))):  # a few point lights as well
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        background[y, x] = rng.uniform(5.0, 40.0) * rng.uniform(0.5, 1.0, 3)
    blurred = convolve(background, disc(radius))
    ys, xs = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.25, 0.75) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.1, 0.3) * w
    distance = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
    subject = np.clip((1.15 - distance) / 0.3, 0.0, 1.0)[..., None]
    return np.clip(subject * linear + (1 - subject) * blurred, 0.0, 1.0)


def make_pair(name: str, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(blur uint8, sharp uint8, description) of set `name` from a clean view with margin (sRGB float)."""
    linear = srgb_decode(clean)
    if name == "sharp-low" or name == "sharp-dof-real":
        return to_uint8(gaussian(centre(clean), rng)), to_uint8(centre(clean)), {}
    if name == "sharp-noisy":
        noisy = srgb_encode(sensor(centre(linear), rng, EVERYDAY_NOISE))
        return to_uint8(noisy), to_uint8(centre(clean)), {}
    if name == "sharp-dof-synth":
        scene = srgb_encode(synthetic_dof(linear, rng))
        return to_uint8(gaussian(centre(scene), rng)), to_uint8(centre(scene)), {}
    family, *rest = name.split("-")
    low, high = float(rest[0]), float(rest[1])
    extent = rng.uniform(max(low, 0.5), high)
    kernel = (nafft_kernel if family == "nafft" else tremor_kernel)(rng, extent)
    blurred = srgb_encode(sensor(centre(convolve(linear, kernel)), rng, LOW_NOISE))
    blur = to_uint8(blurred)
    jpeg = int(rest[2].removeprefix("jpeg")) if len(rest) > 2 else 0
    if jpeg:
        buffer = io.BytesIO()
        PILImage.fromarray(blur).save(buffer, format="JPEG", quality=jpeg, subsampling=2)
        blur = np.asarray(PILImage.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return blur, to_uint8(centre(clean)), {"extent_px": round(extent, 2), "jpeg": jpeg}


SETS = ("sharp-low", "sharp-noisy", "sharp-dof-real", "sharp-dof-synth",
        *(f"nafft-{a:g}-{b:g}" for a, b in BINS), *(f"tremor-{a:g}-{b:g}" for a, b in BINS),
        "shake-11-31", "shake-11-31-jpeg80")


def build(photos: list[Path], out: Path, views: int, seed: int, sets: tuple[str, ...] = SETS,
          scales: tuple[float, float] | None = None) -> dict[str, int]:
    """Write every set of `sets` for `views` views of each photograph (down-scaled within `scales` when given, see
    `view`); returns the pairs per set."""
    counts = {}
    for name in sets:
        chosen = [p for p in photos if p.stem in REAL_DOF] if name == "sharp-dof-real" else photos
        per_photo = views * len(photos) // max(len(chosen), 1) if name == "sharp-dof-real" else views
        records = {}
        for p_index, path in enumerate(chosen):
            photo = load(path)
            for v in range(per_photo):
                # the view depends on (photograph, view number, whether whole) only; the condition on the set too
                view_rng = np.random.default_rng((seed, p_index if name != "sharp-dof-real" else 100 + p_index, v))
                clean = view(photo, view_rng, whole=name == "sharp-dof-real", scales=scales)
                set_key = sum(ord(c) * 31**i for i, c in enumerate(name.replace("-jpeg80", ""))) % 2**31
                blur, sharp, info = make_pair(name, clean, np.random.default_rng((seed, set_key, p_index, v)))
                file_name = f"{path.stem}_{v:02d}.png"
                for folder, pixels in (("blur", blur), ("sharp", sharp)):
                    (out / name / folder).mkdir(parents=True, exist_ok=True)
                    PILImage.fromarray(pixels).save(out / name / folder / file_name)
                records[file_name] = info
        if not records:
            continue
        (out / name / "sets.json").write_text(json.dumps({"set": name, "seed": seed, "pairs": records}, indent=1))
        counts[name] = len(records)
        print(f"{name}: {len(records)} pairs", flush=True)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="a folder of held-out sharp photographs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--views", type=int, default=4, help="views per photograph (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=SETS)
    parser.add_argument("--scales", help="LOW-HIGH down-scaling of the views (default: a third of the shorter side "
                        "to all of it); e.g. 1-2 for views near full resolution")
    args = parser.parse_args()
    scales = tuple(float(v) for v in args.scales.split("-")) if args.scales else None
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not photos:
        raise SystemExit(f"{args.photos}: no photographs (.png, .jpg)")
    build(photos, args.out, args.views, args.seed, tuple(args.sets), scales)
    return 0


if __name__ == "__main__":
    sys.exit(main())
