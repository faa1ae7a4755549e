"""Deblur image files: inputs from files, folders and globs, outputs that keep size, bit depth, alpha and metadata.

Output names: a file given directly or through a glob is written to `OUT/<its name>`; a file found in a folder
argument keeps its path relative to that folder, under the folder's own name when several folders are given (so two
folders of the same layout do not collide). A single input may be written to a file: `-o OUT` with an image suffix.
The format follows the output's suffix (the input's, in a folder), so a 16-bit PNG or TIFF comes out 16-bit, an
alpha channel is carried over untouched, grayscale comes out grayscale (the mean of the model's three output
channels: no tint), the ICC profile, EXIF, XMP and PNG text are kept (`nafft.data.io.ImageMetadata`), and a JPEG is
written with the quality and chroma subsampling of the JPEG it came from. No output may land on an input, and an
output format that cannot be written is refused: both before anything is computed. An existing output is replaced
(atomically), unless the caller leaves it out with `existing_outputs`, as `nafft deblur --skip-existing` does.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nafft.data.io import (
    IMAGE_SUFFIXES,
    check_writable,
    decode_with_metadata,
    image_to_tensor,
    is_image_file,
    jpeg_options,
    list_images,
    quantize,
    write_image,
)
from nafft.errors import UserError
from nafft.inference.predict import Predictor

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")
# Image suffixes people try that nafft neither reads nor writes (named in the error instead of "no such file").
_UNSUPPORTED_SUFFIXES = (".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".ppm", ".pgm", ".pbm", ".tga")
SUPPORTED = ", ".join(IMAGE_SUFFIXES)


class OverwriteError(UserError):
    """An output path that is one of the inputs."""


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    source: Path
    target: Path


@dataclass
class JobResult:
    """What happened to one job: `error` is None on success."""

    job: Job
    error: str | None = None
    size: tuple[int, int] | None = None
    bit_depth: int | None = None
    alpha: bool = False
    seconds: float = 0.0
    tiles: int = 0
    strength: float | None = None  # the blend strength applied (the guard's choice under strength "auto")


def collect_inputs(specs: Iterable[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand INPUT arguments into (file, output-relative name) pairs, with one message per bad argument.

    Folders contribute their image files (recursively, hidden files skipped), globs their matches (`**` allowed);
    with more than one folder argument each folder's files are named under the folder's name. Files are taken as
    given when their suffix is one nafft reads (an unreadable one is reported when it is read).
    """
    specs = list(specs)
    folders = [Path(spec) for spec in specs if Path(spec).is_dir()]
    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            images = list_images(path, recursive=True)
            if not images:
                problems.append(f"{path}: folder holds no image files")
            prefix = Path(path.resolve().name) if len(folders) > 1 else Path()
            found += [(p, prefix / p.relative_to(path)) for p in images]
        elif path.exists():
            if is_image_file(path):
                found.append((path, Path(path.name)))
            else:
                problems.append(f"{path}: not an image type nafft reads (suffix '{path.suffix}'); it reads {SUPPORTED}")
        elif _GLOB_CHARS & set(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file() and is_image_file(m)]
            if not files:
                problems.append(f"{spec}: no image files match")
            found += [(m, Path(m.name)) for m in files]
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def output_is_file(out: str | Path) -> bool:
    """Whether `-o OUT` names one output image (an image suffix and not an existing folder) rather than a folder.

    Raises:
        UserError: OUT has the suffix of an image format nafft cannot write.
    """
    out = Path(out)
    if out.is_dir():
        return False
    suffix = out.suffix.lower()
    if suffix in _UNSUPPORTED_SUFFIXES:
        raise UserError(f"-o {out}: nafft cannot write '{suffix}' images; use one of {SUPPORTED}")
    return suffix in IMAGE_SUFFIXES


def plan_jobs(inputs: list[tuple[Path, Path]], out: str | Path) -> tuple[list[Job], list[str]]:
    """Output paths for the inputs: under the folder `out`, or `out` itself when it names one image file.

    Duplicates of an input file are dropped; an input whose output another input already takes is reported
    (skipped, not overwritten).

    Raises:
        OverwriteError: an output would be one of the input files.
        UserError: `out` names one file but several images are given.
    """
    out = Path(out)
    sources = {}
    for source, _ in inputs:
        sources.setdefault(source.resolve(), source)
    if output_is_file(out):
        if len(sources) > 1:
            raise UserError(
                f"-o {out} names one image file, but {len(sources)} images are given; give a folder for several images"
            )
        inputs = [(source, Path(out.name)) for source, _ in inputs]
        out_dir = out.parent
    else:
        out_dir = out
    jobs: list[Job] = []
    problems: list[str] = []
    seen_sources: set[Path] = set()
    targets: dict[Path, Path] = {}
    for source, rel in inputs:
        real = source.resolve()
        if real in seen_sources:
            continue
        seen_sources.add(real)
        target = out_dir / rel
        real_target = target.resolve()
        if real_target in sources:
            raise OverwriteError(
                f"{target}: refusing to write over the input {sources[real_target]}; choose another -o folder"
            )
        if real_target in targets:
            problems.append(
                f"{source}: skipped, its output {target} is already the output of {targets[real_target]}"
            )
            continue
        targets[real_target] = source
        jobs.append(Job(source, target))
    return jobs, problems


def existing_outputs(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(jobs whose output is missing, jobs whose output exists): resuming a batch writes only the missing ones.

    An interrupted run leaves no partial output under a final name (writes are atomic), so an existing output is a
    finished one.
    """
    missing = [job for job in jobs if not job.target.exists()]
    return missing, [job for job in jobs if job.target.exists()]


def output_pixels(pred: torch.Tensor, bit_depth: int | None, gray: bool = False) -> np.ndarray:
    """A (3, H, W) prediction as the (H, W, 3) pixels to write, rounded once to `bit_depth` bits in place
    (overwriting `pred`), or float32 clipped to [0, 1] when `bit_depth` is None; for a gray input (H, W, 1), the mean
    of the model's three channels (they differ by a few levels: gray stays gray, no tint)."""
    if gray:
        pred = pred.mean(dim=0, keepdim=True)
    array = pred.numpy().transpose(1, 2, 0)
    if bit_depth is None:
        return np.clip(array, 0.0, 1.0, out=array)
    return quantize(array, bit_depth, in_place=True)


def deblur_file(job: Job, predictor: Predictor) -> JobResult:
    """Read, predict and write one image; a file that cannot be read or written gives a result with `error`.

    Large images stay within a few full-size buffers: the integer pixels, the float input, the float output
    (quantised in place) and the integer output.
    """
    result = JobResult(job)
    try:
        rgb, alpha, bit_depth, metadata = decode_with_metadata(job.source)
    except UserError as exc:
        result.error = str(exc)
        return result
    result.size = (int(rgb.shape[0]), int(rgb.shape[1]))
    result.bit_depth = bit_depth
    result.alpha = alpha is not None
    try:
        check_writable(job.target, bit_depth, alpha=alpha is not None)  # before the model runs, not after
    except UserError as exc:
        result.error = f"{job.source}: {exc}"
        return result
    options = jpeg_options(job.source) if job.target.suffix.lower() in (".jpg", ".jpeg") else {}
    x = image_to_tensor(rgb)
    del rgb
    start = time.perf_counter()
    pred = predictor(x)
    result.seconds = time.perf_counter() - start
    result.tiles = predictor.last_tiles
    result.strength = predictor.last_strengths[0] if predictor.last_strengths else None
    del x
    pixels = output_pixels(pred, bit_depth, metadata.gray)
    del pred
    try:
        write_image(job.target, pixels, alpha=alpha, bit_depth=bit_depth, metadata=metadata, **options)
    except (UserError, OSError) as exc:
        result.error = str(exc) if isinstance(exc, UserError) else f"{job.target}: cannot write: {exc}"
    return result
