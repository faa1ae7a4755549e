"""Deblur image files: inputs from files, folders and globs, outputs that keep size, bit depth and alpha.

Output names: a file given directly or through a glob is written to `OUT/<its name>`; a file found in a folder
argument keeps its path relative to that folder. The format follows the input's suffix, so a 16-bit PNG or TIFF
comes out 16-bit and an alpha channel is carried over untouched (grayscale input comes out as RGB). No output may
land on an input: the whole run is refused before anything is written if one would.
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

from nafft.data.io import decode_image, is_image_file, list_images, quantize, to_float, write_image
from nafft.errors import UserError
from nafft.inference.predict import Predictor

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


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


def collect_inputs(specs: Iterable[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand INPUT arguments into (file, output-relative name) pairs, with one message per bad argument.

    Folders contribute their image files (recursively, hidden files skipped), globs their matches (`**` allowed);
    files are taken as given, so an unreadable one is reported when it is read.
    """
    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            images = list_images(path, recursive=True)
            if not images:
                problems.append(f"{path}: folder holds no image files")
            found += [(p, p.relative_to(path)) for p in images]
        elif path.exists():
            found.append((path, Path(path.name)))
        elif _GLOB_CHARS & set(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file() and is_image_file(m)]
            if not files:
                problems.append(f"{spec}: no image files match")
            found += [(m, Path(m.name)) for m in files]
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def plan_jobs(inputs: list[tuple[Path, Path]], out_dir: str | Path) -> tuple[list[Job], list[str]]:
    """Output paths under `out_dir`; duplicates of an input file are dropped, colliding outputs reported.

    Raises:
        OverwriteError: an output would be one of the input files.
    """
    out_dir = Path(out_dir)
    sources = {}
    for source, _ in inputs:
        sources.setdefault(source.resolve(), source)
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


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8/uint16 (H, W, 3) -> float32 (3, H, W) in [0, 1], as `nafft.data.io.to_float`, without an HWC float copy."""
    return torch.from_numpy(to_float(np.ascontiguousarray(rgb.transpose(2, 0, 1))))


def deblur_file(job: Job, predictor: Predictor) -> JobResult:
    """Read, predict and write one image; a file that cannot be read or written gives a result with `error`.

    Large images stay within a few full-size buffers: the integer pixels, the float input, the float output
    (quantised in place) and the integer output.
    """
    result = JobResult(job)
    try:
        rgb, alpha, bit_depth = decode_image(job.source)
    except UserError as exc:
        result.error = str(exc)
        return result
    result.size = (int(rgb.shape[0]), int(rgb.shape[1]))
    result.bit_depth = bit_depth
    result.alpha = alpha is not None
    x = _to_tensor(rgb)
    del rgb
    start = time.perf_counter()
    pred = predictor(x)
    result.seconds = time.perf_counter() - start
    result.tiles = predictor.last_tiles
    del x
    pixels = quantize(pred.numpy().transpose(1, 2, 0), bit_depth, in_place=True)  # overwrites pred
    del pred
    try:
        write_image(job.target, pixels, alpha=alpha, bit_depth=bit_depth)
    except (UserError, OSError) as exc:
        result.error = str(exc) if isinstance(exc, UserError) else f"{job.target}: cannot write: {exc}"
    return result
