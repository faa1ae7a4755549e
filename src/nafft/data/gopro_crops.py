"""Cutting paired images into overlapping square tiles, with the offsets of NAFNet's GoPro preparation.

Along each axis the tile offsets are 0, step, 2*step, ... up to the last one that fits (length - crop), plus one
tile flush with the far border when the part left uncovered, length - (last offset + crop), exceeds `thresh`.
For a 1280x720 GoPro frame with crop 512 and step 256: h offsets {0, 208}, w offsets {0, 256, 512, 768},
8 tiles. Tiles are numbered from 1, row by row (h outer, w inner).

Tile names carry the pair's whole relative name, so tiles of different sequences never collide:
"GOPR0372_07_00/000047.png" -> "GOPR0372_07_00_000047_s001.png". Tiles are PNG at the source bit depth, written
atomically; a tile present in both output folders is finished and is skipped by a re-run.

An output folder records what it was cut from and how in OUT/prepare.json (input folder, crop, step, thresh), written
before the first tile. A run with other settings or another input is refused before it writes anything, as is a
folder that holds images but no record: a tile name says which pair and which number, not which crop, so adding to
such a folder would mix tiles of different sizes or content under names that look alike.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nafft.atomic_files import atomic_write_text
from nafft.data.io import ImageReadError, decode_image, list_images, write_image
from nafft.data.pair_folders import PAIR_FOLDERS, Pair, scan_pairs
from nafft.errors import UserError

OUT_FOLDERS = PAIR_FOLDERS[0]  # ("blur", "sharp")
MANIFEST = "prepare.json"


class TilingError(UserError):
    """Tiling arguments that cannot work."""


def tile_offsets(length: int, crop: int, step: int, thresh: int = 0) -> list[int]:
    """Start offsets of the tiles along one axis (empty when `length < crop`)."""
    if crop < 1 or step < 1 or thresh < 0:
        raise TilingError(f"need crop >= 1, step >= 1, thresh >= 0 (got crop={crop}, step={step}, thresh={thresh})")
    if length < crop:
        return []
    offsets = list(range(0, length - crop + 1, step))
    if length - (offsets[-1] + crop) > thresh:
        offsets.append(length - crop)
    return offsets


def tile_boxes(height: int, width: int, crop: int, step: int, thresh: int = 0) -> list[tuple[int, int, int]]:
    """(number, top, left) of every tile of a `height` x `width` image, numbered from 1, rows first."""
    boxes = []
    for top in tile_offsets(height, crop, step, thresh):
        for left in tile_offsets(width, crop, step, thresh):
            boxes.append((len(boxes) + 1, top, left))
    return boxes


def tile_name(pair_name: str, number: int) -> str:
    """'GOPR0372_07_00/000047.png', 3 -> 'GOPR0372_07_00_000047_s003.png' (always PNG)."""
    stem = str(PurePosixPath(pair_name).with_suffix(""))
    return f"{stem.replace('/', '_')}_s{number:03d}.png"


@dataclass
class TileJob:
    """The tiles of one pair."""

    pair: Pair
    boxes: list[tuple[int, int, int]]
    names: list[str]


@dataclass
class TileResult:
    """What happened to one pair: tiles written and already present, or the problem that stopped it."""

    name: str
    written: int = 0
    skipped: int = 0
    problem: str | None = None


@dataclass
class PrepareSummary:
    pairs: int = 0
    tiles_written: int = 0
    tiles_skipped: int = 0
    problems: list[str] = field(default_factory=list)


def plan_tiles(input_dir: str | os.PathLike, crop: int = 512, step: int = 256,
               thresh: int = 0) -> tuple[list[TileJob], list[str]]:
    """The tile jobs of every good pair under `input_dir` and one line per bad pair.

    Bad pairs: missing partner, unreadable file, size mismatch, image smaller than the crop, or two pairs whose
    tile names would collide.

    Raises:
        PairingError: `input_dir` holds no pair folders at all.
        TilingError: bad crop/step/thresh.
    """
    tile_offsets(crop, crop, step, thresh)  # validates the arguments
    pairs, problems = scan_pairs(input_dir)
    jobs = []
    owner: dict[str, str] = {}
    for pair in pairs:
        height, width = pair.size
        boxes = tile_boxes(height, width, crop, step, thresh)
        if not boxes:
            problems.append(f"too small: {pair.blur} is {width}x{height}, smaller than the {crop}x{crop} crop")
            continue
        names = [tile_name(pair.name, number) for number, _, _ in boxes]
        clash = owner.get(names[0])
        if clash is not None:
            problems.append(f"name clash: {pair.name} and {clash} both give tiles named {names[0]}")
            continue
        owner.update(dict.fromkeys(names, pair.name))
        jobs.append(TileJob(pair, boxes, names))
    return jobs, problems


def _settings_text(settings: dict) -> str:
    return f"--input {settings['input']} --crop {settings['crop']} --step {settings['step']} --thresh {settings['thresh']}"


def claim_output(out_dir: str | os.PathLike, input_dir: str | os.PathLike, crop: int, step: int,
                 thresh: int = 0) -> None:
    """Check that `out_dir` is empty or holds tiles of the same input and settings, and record them in it.

    Raises:
        TilingError: `out_dir` holds tiles of another input or other settings, or images without a record.
    """
    out_dir = Path(out_dir)
    wanted = {"input": str(Path(input_dir).resolve()), "crop": crop, "step": step, "thresh": thresh}
    manifest = out_dir / MANIFEST
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TilingError(f"{manifest}: unreadable ({exc}); use another --out") from None
        if {k: recorded.get(k) for k in wanted} != wanted:
            raise TilingError(
                f"{out_dir}: holds tiles made with {_settings_text(recorded)}; this run asks for "
                f"{_settings_text(wanted)}. Tiles of both would mix under the same names: use another --out (or the "
                f"recorded settings to finish that folder)"
            )
        return
    existing = sum(len(list_images(out_dir / folder)) for folder in OUT_FOLDERS if (out_dir / folder).is_dir())
    if existing:
        raise TilingError(
            f"{out_dir}: holds {existing} images but no {MANIFEST} saying how they were cut (an older nafft or "
            f"another tool); use another --out, or move them away"
        )
    atomic_write_text(manifest, json.dumps({"tool": "nafft prepare", **wanted}, indent=2) + "\n")


def _run_job(job: TileJob, out_dir: Path, crop: int, compress_level: int) -> TileResult:
    dirs = [out_dir / folder for folder in OUT_FOLDERS]
    todo = [i for i, name in enumerate(job.names) if not all((d / name).is_file() for d in dirs)]
    result = TileResult(job.pair.name, skipped=len(job.names) - len(todo))
    if not todo:
        return result
    try:
        images = [decode_image(job.pair.blur), decode_image(job.pair.sharp)]
    except ImageReadError as exc:
        result.problem = f"unreadable: {exc}"
        return result
    shapes = [rgb.shape for rgb, _, _ in images]
    if shapes[0] != shapes[1] or shapes[0][:2] != job.pair.size:
        result.problem = (f"size mismatch: {job.pair.blur} is {shapes[0][1]}x{shapes[0][0]} but {job.pair.sharp} "
                          f"is {shapes[1][1]}x{shapes[1][0]}")
        return result
    for i in todo:
        _, top, left = job.boxes[i]
        for folder, (rgb, alpha, depth) in zip(dirs, images):
            window = (slice(top, top + crop), slice(left, left + crop))
            write_image(folder / job.names[i], rgb[window], alpha=None if alpha is None else alpha[window],
                        bit_depth=depth, compress_level=compress_level)
    result.written = len(todo)
    return result


def _run_job_star(args) -> TileResult:
    return _run_job(*args)


def run_tile_jobs(jobs: list[TileJob], out_dir: str | os.PathLike, crop: int = 512, workers: int = 1,
                  compress_level: int = 1) -> Iterator[TileResult]:
    """Tile every job into `out_dir`/blur and `out_dir`/sharp, yielding one result per pair as it finishes.

    Args:
        jobs: from `plan_tiles` (same `crop`).
        out_dir: output root (created).
        workers: processes; 1 works in this process.
        compress_level: PNG zlib level (1 is ~3x faster to write than 6, files ~10% larger).
    """
    out_dir = Path(out_dir)
    for folder in OUT_FOLDERS:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    tasks = [(job, out_dir, crop, compress_level) for job in jobs]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _run_job_star(task)
        return
    with multiprocessing.get_context().Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap_unordered(_run_job_star, tasks)


def prepare_tiles(input_dir: str | os.PathLike, out_dir: str | os.PathLike, crop: int = 512, step: int = 256,
                  thresh: int = 0, workers: int = 1, compress_level: int = 1,
                  progress: Callable[[TileResult], None] | None = None) -> PrepareSummary:
    """Tile all good pairs under `input_dir` into `out_dir`/{blur,sharp}; bad pairs are reported, not raised.

    Raises:
        TilingError: bad settings, or an `out_dir` made from another input or with other settings (`claim_output`).

    Returns:
        Counts and one line per bad pair (sorted); the caller decides the exit status.
    """
    jobs, problems = plan_tiles(input_dir, crop, step, thresh)
    claim_output(out_dir, input_dir, crop, step, thresh)
    summary = PrepareSummary(problems=problems)
    for result in run_tile_jobs(jobs, out_dir, crop, workers, compress_level):
        if progress is not None:
            progress(result)
        if result.problem:
            summary.problems.append(result.problem)
            continue
        summary.pairs += 1
        summary.tiles_written += result.written
        summary.tiles_skipped += result.skipped
    summary.problems.sort()
    return summary
