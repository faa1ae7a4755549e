"""`nafft prepare`: cut a paired split (e.g. GoPro train) into overlapping tiles, NAFNet style."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "cut paired images into overlapping crop x crop tiles (NAFNet's GoPro preparation)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="SPLIT_DIR",
                        help="SPLIT_DIR/SEQUENCE/{blur,sharp}/ or SPLIT_DIR/{blur,sharp}/ (also input/target)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT",
                        help="writes OUT/blur/, OUT/sharp/ and OUT/prepare.json (the settings; a folder cut from "
                             "another input or with other settings is refused)")
    parser.add_argument("--crop", type=_positive, default=512, help="tile side (default 512)")
    parser.add_argument("--step", type=_positive, default=256, help="distance between tiles (default 256)")
    parser.add_argument("--thresh", type=_non_negative, default=0,
                        help="add a border-flush tile when more than this many pixels are left (default 0)")
    parser.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                        help="parallel processes (default: all CPUs)")
    parser.add_argument("--compress-level", type=int, choices=range(10), default=1, metavar="0-9",
                        help="PNG zlib level (default 1: fast to write, files ~10%% larger than 6)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nafft.data.gopro_crops import claim_output, plan_tiles, run_tile_jobs

    jobs, problems = plan_tiles(args.input, args.crop, args.step, args.thresh)
    claim_output(args.out, args.input, args.crop, args.step, args.thresh)  # refuses an OUT cut another way
    tiles = sum(len(job.names) for job in jobs)
    print(f"{len(jobs)} pairs -> {tiles} tiles of {args.crop}x{args.crop} (step {args.step}) in {args.out}")
    written = skipped = done = 0
    with tqdm(total=len(jobs), unit="pair", desc="prepare", file=sys.stderr) as bar:
        for result in run_tile_jobs(jobs, args.out, args.crop, args.workers, args.compress_level):
            bar.update(1)
            if result.problem:
                problems.append(result.problem)
                continue
            done += 1
            written += result.written
            skipped += result.skipped
    print(f"done: {done} pairs, {written} tiles written, {skipped} already there")
    for problem in sorted(problems):
        print(f"nafft: bad pair: {problem}", file=sys.stderr)
    if problems:
        print(f"nafft: error: {len(problems)} bad pair(s) skipped (listed above)", file=sys.stderr)
        return 1
    return 0
