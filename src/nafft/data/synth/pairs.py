"""Synthetic blurred/sharp pairs: the settings, one pair from (settings, seed, index), and the folder writer.

The training generator ("gopro" or "kernel" blur), per pair:
1. a sharp scene (dead leaves, or a random view of a photograph) with room around it for the motion; in a share
   of the scenes part or all of it is out of focus (depth of field), in the sharp target too, so that a model
   learns to remove motion blur and leave soft backgrounds soft;
2. linear light (gamma `SOURCE_GAMMA`) times a random exposure factor (highlight saturation);
3. optional mild defocus of the whole pair's input (off by default), then the motion blur (frames averaged along a camera path, or its kernel); the path
   length comes from a mixture of still, everyday and long shakes;
4. both images clipped at 1 (so highlights smear as they do in real shake), Poisson-Gaussian sensor noise on the
   blurred one;
5. a random camera response curve applied to both, 8 bits, and optional JPEG compression of the blurred one.

The evaluation generator ("shake" blur) is deliberately different: random-walk camera-shake kernels centred on
their centre of mass, the sRGB curve, Gaussian noise, no saturation, defocus or JPEG; the sharp image is the
source itself. Models are scored on it to see whether they learnt deblurring or our generator.

Every pair is a pure function of (settings, seed, pair number): the same arguments give byte-identical files,
whatever the number of workers, and pair i does not depend on how many pairs are made.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nafft.atomic_files import atomic_write_bytes
from nafft.data.io import list_images, write_image
from nafft.data.synth import camera, motion, scenes
from nafft.errors import UserError
from nafft.metrics import psnr

SOURCES = ("deadleaves", "packages", "skimage")
BLURS = ("gopro", "kernel", "shake")
RESPONSES = ("random", "gamma")
MANIFEST = "synth.json"
MANIFEST_VERSION = 2


class SynthError(UserError):
    """Synthesis settings or an output folder that cannot be used."""


@dataclass(frozen=True)
class SynthSettings:
    """Everything that determines the pairs (stored as OUT/synth.json). Defaults: the realistic training
    generator; `SynthSettings.basic()` turns the camera model off (fixed gamma; no saturation, JPEG, defocus,
    depth of field, long or still pairs).

    Attributes:
        source: "deadleaves", "packages" (the photographs inside installed packages, `scenes.package_photos`),
            "skimage" (scikit-image's only) or a folder of sharp images (searched recursively).
        size: side of the square images.
        seed: non-negative integer.
        blur: "gopro" (frames averaged along a camera path), "kernel" (the path's kernel, convolved) or "shake"
            (the independent evaluation generator; the camera options below do not apply and are set to off).
        strength: motion length multiplier (1: median `motion.MEDIAN_MOTION_PX`).
        noise: multiplier of the sensor noise's standard deviation (0 = none).
        long_motion: fraction of pairs with a long shake (`motion.LONG_MOTION_PX` times strength).
        still: fraction of pairs with at most `motion.STILL_MOTION_PX` of motion (half of them none).
        defocus: fraction of pairs whose blurred image is also mildly out of focus (disc radius uniform in
            `motion.DEFOCUS_RADIUS_PX`) while the target is sharp: teaches refocusing, but conflicts with leaving
            soft backgrounds alone, so off by default.
        soft: fraction of scenes with out-of-focus regions (or all out of focus): `scenes.focus_mask`, a disc of
            radius drawn log-uniformly from `soft_radius`, in the sharp target as well.
        soft_radius: (smallest, largest) disc radius in pixels of the out-of-focus regions; close-ups and
            portraits show tens of pixels.
        bokeh: fraction of out-of-focus scenes whose brightest points (and a few point lights) are pushed above
            full scale before the defocus, so that they become bright discs (`scenes.bokeh_highlights`).
        noise_gain: (lowest, highest) gain of the sensor noise over RSBlur's typical level, drawn log-uniformly;
            a low bound near 0 gives pairs as clean as a good camera in daylight.
        log_uniform: fraction of the moving pairs (neither still nor long) whose path length is drawn
            log-uniformly from `motion.LOG_UNIFORM_MOTION_PX` instead of the everyday log-normal, so that every
            blur length from 1 px to tens of pixels is well represented.
        saturation: exposure factor drawn from [1 - s, 1 + s] before clipping at 1 (0 = off; RSBlur: 0.75).
        response: "random" (a random camera curve per pair, `camera.random_response`) or "gamma" (2.2).
        jpeg: fraction of blurred images saved through JPEG.
        jpeg_quality: (lowest, highest) JPEG quality, drawn uniformly.
        downscale: (least, most) factor by which a photograph is down-scaled for its crop, drawn log-uniformly
            (`scenes.random_photo_crop`; never up-scaled: a photograph too small for the most is cropped at the
            least it allows). (1, 1.5) keeps photographs near their own resolution, with their own softness.
    """

    source: str = "deadleaves"
    size: int = 256
    seed: int = 0
    blur: str = "gopro"
    strength: float = 1.0
    noise: float = 1.0
    long_motion: float = 0.25
    still: float = 0.1
    defocus: float = 0.0
    soft: float = 0.25
    soft_radius: tuple[float, float] = motion.DEPTH_OF_FIELD_RADIUS_PX
    bokeh: float = 0.0
    noise_gain: tuple[float, float] = camera.NOISE_GAIN_RANGE
    log_uniform: float = 0.0
    saturation: float = 0.75
    response: str = "random"
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 95)
    downscale: tuple[float, float] = (1.0, scenes.MAX_DOWNSCALE)

    def __post_init__(self):
        object.__setattr__(self, "jpeg_quality", tuple(int(q) for q in self.jpeg_quality))
        for name in ("soft_radius", "noise_gain", "downscale"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise SynthError(f"{name} must be two numbers 0 < low <= high, got {getattr(self, name)}")
            object.__setattr__(self, name, value)
        if self.downscale[0] < 1:
            raise SynthError(f"downscale must be factors of at least 1 (photographs are never up-scaled), got "
                             f"{self.downscale}")
        if self.size < 8:
            raise SynthError(f"size must be at least 8, got {self.size}")
        if self.seed < 0:
            raise SynthError(f"seed must be non-negative, got {self.seed}")
        if self.blur not in BLURS:
            raise SynthError(f"unknown blur '{self.blur}'; use one of {', '.join(BLURS)}")
        if self.response not in RESPONSES:
            raise SynthError(f"unknown response '{self.response}'; use one of {', '.join(RESPONSES)}")
        for name, high in (("strength", 10), ("noise", 10), ("saturation", 0.95)):
            if not 0 <= getattr(self, name) <= high:
                raise SynthError(f"{name} must be in [0, {high}], got {getattr(self, name)}")
        for name in ("long_motion", "still", "defocus", "soft", "bokeh", "log_uniform", "jpeg"):
            if not 0 <= getattr(self, name) <= 1:
                raise SynthError(f"{name} is a fraction of the pairs in [0, 1], got {getattr(self, name)}")
        if self.long_motion + self.still > 1:
            raise SynthError(f"long_motion + still must be at most 1, got {self.long_motion} + {self.still}")
        low, high = self.jpeg_quality if len(self.jpeg_quality) == 2 else (0, -1)
        if not 1 <= low <= high <= 100:
            raise SynthError(f"jpeg_quality must be two qualities 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if self.blur == "shake":
            for name, value in _CAMERA_OFF.items():
                object.__setattr__(self, name, value)

    @classmethod
    def basic(cls, **changes) -> SynthSettings:
        """The plain generator: gamma 2.2, sensor noise and 8 bits only, the everyday motion range."""
        return cls(**{**_CAMERA_OFF, **changes})

    def record(self) -> dict:
        """The JSON form written to synth.json."""
        return json.loads(json.dumps({"nafft_synth": MANIFEST_VERSION, **dataclasses.asdict(self)}))


# The options of the realistic camera model and the values that turn each off.
_CAMERA_OFF = {"long_motion": 0.0, "still": 0.0, "defocus": 0.0, "soft": 0.0, "bokeh": 0.0, "log_uniform": 0.0,
               "saturation": 0.0, "response": "gamma", "jpeg": 0.0}
CAMERA_OPTIONS = tuple(_CAMERA_OFF)
_DEFAULT_RECORD = {k: v for k, v in SynthSettings().record().items()
                   if k in ("soft_radius", "bokeh", "noise_gain", "log_uniform", "downscale")}


@dataclass
class SynthPair:
    """One synthetic pair: uint8 (S, S, 3) images and what made them.

    Attributes:
        blur, sharp: the images.
        psnr: PSNR of blur against sharp in dB.
        motion_px: path length of the camera motion (largest extent of the kernel for "shake").
        frames: frames averaged ("gopro"); 0 for the kernel blurs.
        defocus_px: disc radius of the defocus, 0 for none.
        soft_px: disc radius of the scene's out-of-focus regions, 0 for a scene in focus.
        jpeg_quality: JPEG quality of the blurred image, 0 for none.
        exposure: the exposure factor before clipping.
    """

    blur: np.ndarray
    sharp: np.ndarray
    psnr: float
    motion_px: float
    frames: int
    defocus_px: float = 0.0
    soft_px: float = 0.0
    jpeg_quality: int = 0
    exposure: float = 1.0


def source_paths(source: str) -> list[Path]:
    """The photographs of a source ([] for dead leaves).

    Raises:
        SynthError: a package source with none of its packages installed, or a folder that is missing or empty.
    """
    if source == "deadleaves":
        return []
    if source in ("packages", "skimage"):
        paths = scenes.package_photos() if source == "packages" else scenes.skimage_photo_paths()
        if not paths:
            needs = "scikit-image, scikit-learn or matplotlib" if source == "packages" else "scikit-image"
            raise SynthError(f"source '{source}' needs {needs} installed (pip install 'nafft[skimage]')")
        return paths
    folder = Path(source)
    if not folder.is_dir():
        raise SynthError(f"unknown source '{source}': use deadleaves, packages, skimage or an existing folder "
                         "of images")
    paths = list_images(folder, recursive=True)
    if not paths:
        raise SynthError(f"{folder}: no images found")
    return paths


def _scene(settings: SynthSettings, rng: np.random.Generator, paths: list[Path], margin: int) -> np.ndarray:
    if paths:
        photo = scenes.load_photo(str(paths[int(rng.integers(0, len(paths)))]))
        return scenes.random_photo_crop(photo, settings.size, rng, margin, settings.downscale)
    return scenes.dead_leaves(settings.size, rng, margin)


def make_pair(settings: SynthSettings, index: int, paths: list[Path] | None = None) -> SynthPair:
    """Pair number `index` of `settings` (a pure function of both; `paths` from the source, or looked up).

    The scene, the motion, the noise and the camera (exposure and response curve) draw from separate
    generators, so the sharp image depends only on (source, size, seed, index, saturation, response): the same
    scenes appear blurred more or less with another strength, blur type, noise or JPEG setting. Depth of field
    draws from a fifth generator: it changes the scene of the pairs it is drawn for, no other.
    """
    paths = source_paths(settings.source) if paths is None else paths
    scene_rng, motion_rng, noise_rng, camera_rng, focus_rng, choice_rng = (
        np.random.default_rng((settings.seed, int(index), s)) for s in range(6))
    if settings.blur == "shake":
        return _shake_pair(settings, paths, scene_rng, motion_rng, noise_rng)
    size = settings.size
    length = motion.motion_length(motion_rng, settings.strength, settings.long_motion, settings.still,
                                  settings.log_uniform, choice_rng)
    trajectory = motion.random_trajectory(motion_rng, settings.strength, size, length)
    with_defocus = motion_rng.random() < settings.defocus
    radius = motion_rng.uniform(*motion.DEFOCUS_RADIUS_PX)
    radius = radius if with_defocus else 0.0
    soft = focus_rng.random() < settings.soft
    soft_radius = math.exp(focus_rng.uniform(*np.log(settings.soft_radius))) if soft else 0.0
    reach = sum(motion.disc_kernel(r).shape[0] // 2 for r in (radius, soft_radius) if r)
    if settings.blur == "kernel":
        kernel = motion.motion_kernel(trajectory)
        margin = kernel.shape[0] // 2 + 3 + reach
    else:
        margin = motion.trajectory_margin(trajectory, size) + reach
    canvas = _scene(settings, scene_rng, paths, margin)

    exposure = camera.exposure_factor(camera_rng, settings.saturation)
    response = camera.random_response(camera_rng)
    if settings.response == "gamma":
        response = camera.ResponseCurve()
    linear = canvas.astype(np.float64) ** camera.SOURCE_GAMMA * exposure
    if soft_radius:
        mask = scenes.focus_mask(focus_rng, size, margin)
        if focus_rng.random() < settings.bokeh:
            linear = scenes.bokeh_highlights(linear, mask, focus_rng)
        linear = scenes.depth_of_field(linear, mask, soft_radius)
    sharp_linear = linear[margin:margin + size, margin:margin + size]
    if radius:
        linear = motion.defocus(linear, radius)
    if settings.blur == "kernel":
        blurred = motion.kernel_blur(linear, kernel, size)
    else:
        blurred = motion.gopro_blur(linear, trajectory, size)

    shot, read = camera.noise_level(noise_rng, settings.noise, settings.noise_gain)
    noisy = camera.poisson_gaussian(np.clip(blurred, 0.0, 1.0), noise_rng, shot, read)
    blur = camera.to_8bit(response(np.clip(noisy, 0.0, 1.0)))
    sharp = camera.to_8bit(response(np.clip(sharp_linear, 0.0, 1.0)))
    with_jpeg = noise_rng.random() < settings.jpeg
    quality = int(noise_rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
    if with_jpeg:
        blur = camera.jpeg_roundtrip(blur, quality)
    return SynthPair(blur=blur, sharp=sharp, psnr=psnr(blur, sharp), motion_px=trajectory.length,
                     frames=len(trajectory.angles) if settings.blur == "gopro" else 0, defocus_px=radius,
                     soft_px=soft_radius, jpeg_quality=quality if with_jpeg else 0, exposure=exposure)


def _shake_pair(settings: SynthSettings, paths: list[Path], scene_rng: np.random.Generator,
                motion_rng: np.random.Generator, noise_rng: np.random.Generator) -> SynthPair:
    size = settings.size
    kernel = motion.shake_kernel(motion_rng, settings.strength)
    margin = kernel.shape[0] // 2 + 3
    canvas = _scene(settings, scene_rng, paths, margin)
    blurred = motion.kernel_blur(camera.srgb_decode(canvas.astype(np.float64)), kernel, size)
    # heteroscedastic Gaussian noise, its level log-uniform over a range of its own
    shot = math.exp(noise_rng.uniform(math.log(2e-5), math.log(5e-4))) * settings.noise**2
    noisy = camera.gaussian_noise(np.clip(blurred, 0.0, 1.0), noise_rng, shot, shot / 3)
    blur = camera.to_8bit(camera.srgb_encode(noisy))
    sharp = camera.to_8bit(canvas[margin:margin + size, margin:margin + size])
    ys, xs = np.nonzero(kernel > kernel.max() * 1e-3)
    extent = float(max(np.ptp(ys), np.ptp(xs)))
    return SynthPair(blur=blur, sharp=sharp, psnr=psnr(blur, sharp), motion_px=extent, frames=0)


# ------------------------------------------------------------------------------------------------ the writer


def pair_name(index: int) -> str:
    return f"{index:06d}.png"


def _check_manifest(out: Path, settings: SynthSettings, paths: list[Path]) -> None:
    record = settings.record()
    if paths:
        record["photos"] = sorted(str(p) for p in paths)
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            existing = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise SynthError(f"{manifest}: unreadable ({exc}); remove it or choose another --out") from None
        if existing.get("nafft_synth") != MANIFEST_VERSION:
            raise SynthError(f"{out} holds pairs made by an older nafft synth (another generator); choose "
                             "another --out")
        # settings added after a folder was made count as their defaults there
        added = {k: v for k, v in _DEFAULT_RECORD.items() if k not in existing and k in record}
        existing = {**added, **existing}
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
    pair: SynthPair | None  # None when the pair was already there

    @property
    def psnr(self) -> float | None:
        return None if self.pair is None else self.pair.psnr

    @property
    def motion_px(self) -> float | None:
        return None if self.pair is None else self.pair.motion_px


def _worker_init() -> None:
    torch.set_num_threads(1)


def _make_and_write(args) -> SynthResult:
    settings, index, paths, out = args
    name = pair_name(index)
    blur_path, sharp_path = out / "blur" / name, out / "sharp" / name
    if blur_path.is_file() and sharp_path.is_file():
        return SynthResult(index, blur_path, None)
    pair = make_pair(settings, index, paths)
    write_image(sharp_path, pair.sharp)
    write_image(blur_path, pair.blur)
    pair.blur = pair.sharp = None  # the images are on disk; do not send them back to the parent process
    return SynthResult(index, blur_path, pair)


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
    paths = source_paths(settings.source)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, settings, paths)
    return _run(out, settings, count, workers, paths)


def _run(out: Path, settings: SynthSettings, count: int, workers: int, paths: list[Path]) -> Iterator[SynthResult]:
    tasks = [(settings, i, paths, out) for i in range(count)]
    if workers <= 1 or count == 1:
        yield from map(_make_and_write, tasks)
        return
    with multiprocessing.get_context().Pool(min(workers, count), initializer=_worker_init) as pool:
        yield from pool.imap(_make_and_write, tasks)


def synthesize_pairs(out: str | os.PathLike, settings: SynthSettings | None = None, count: int = 100,
                     workers: int = 1, progress: Callable[[SynthResult], None] | None = None,
                     **changes) -> list[Path]:
    """Make `count` synthetic pairs in `out`/blur and `out`/sharp (a flat pair folder); returns the blur paths.

    Args:
        out: output folder (created); must be empty or hold pairs of the same settings.
        settings: the generator (default `SynthSettings()`, the realistic one); `changes` replace its fields,
            e.g. `synthesize_pairs(out, source="packages", size=128, count=500)`.
        count: number of pairs.
        workers: processes (results do not depend on it).
        progress: called with each `SynthResult` as it is done.

    Raises:
        SynthError: bad settings, unknown source, or an output folder made with other settings.
    """
    try:
        settings = dataclasses.replace(settings or SynthSettings(), **changes)
    except TypeError as exc:
        raise SynthError(f"unknown synthesis setting: {exc}") from None
    paths = []
    for result in iter_synthesize(out, settings, count, workers):
        if progress is not None:
            progress(result)
        paths.append(result.path)
    return paths
