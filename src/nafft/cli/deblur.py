"""`nafft deblur`: deblur image files, folders or globs, and videos (with the bundled default model or a checkpoint)."""

from __future__ import annotations

import argparse
import sys

from nafft.cli.args import (
    add_threads_argument,
    device,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    strength,
)
from nafft.inference.predict import DEFAULT_STRENGTH

HELP = "deblur image files, folders or globs, and videos (any size; keeps bit depth, alpha and metadata)"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by deblur and eval: model, device, TLC, tiling, precision, threads."""
    parser.add_argument(
        "--checkpoint", metavar="CKPT",
        help="weights: a nafft .safetensors, an official NAFNet .pth or a bundled model's name (default: the "
             "bundled default model, see `nafft models`)"
    )
    parser.add_argument(
        "--guard", metavar="FILE",
        help="the strength guard that --strength auto asks (default: a bundled model's own; other weights have "
             "none, and auto is then 1); made by scripts/train_guard.py"
    )
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument(
        "--tlc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TLC local pooling with the checkpoint's training patch size (256 for official weights); default on",
    )
    parser.add_argument(
        "--tile",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="tile side in pixels, at least 4x the model's padding multiple (64 for NAFNet); default: automatic "
        "(when the image would not fit the memory budget, or on the CPU when tiles are faster); 0 = never",
    )
    parser.add_argument(
        "--overlap",
        type=non_negative_int,
        default=None,
        metavar="M",
        help="least overlap between tiles, at most a third of the tile (default 32, or a third of a smaller tile)",
    )
    parser.add_argument(
        "--self-ensemble", action="store_true", help="average over 8 flips/transpositions (8x time)"
    )
    parser.add_argument(
        "--strength", type=strength, default=DEFAULT_STRENGTH, metavar="S",
        help="how much of the restoration to apply, 0..1: S x restored + (1 - S) x input, blended before the "
             "one rounding (1: the full restoration; 0: the input's pixels); auto (the default): the model's guard "
             "chooses S per image, at most the ceiling in its card, and a model without a guard restores fully "
             "(docs/trust.md)"
    )
    parser.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    parser.add_argument(
        "--memory-budget",
        type=positive_float,
        default=None,
        metavar="GB",
        help="activation memory one forward pass may use before tiling (default: 40%% of free RAM, 70%% of GPU)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last memory format (default: on the CPU, where it is about twice as fast; off on CUDA)",
    )
    add_threads_argument(parser)


def open_from_args(args: argparse.Namespace):
    """The weights of `--checkpoint` (without it, the bundled default model, said on the console first) opened on
    `--device` with `--tlc` and `--channels-last`: the start-up of deblur and eval.

    Raises:
        UserError: a device this machine lacks (before any file is read), unreadable weights, or a preset's
            untrained weights.
    """
    from nafft.errors import UserError
    from nafft.inference.opened_model import default_model_note, open_model

    opened = open_model(args.checkpoint, device=args.device, tlc=args.tlc, channels_last=args.channels_last,
                        guard=args.guard)
    if not opened.trained:
        raise UserError(f"--checkpoint {args.checkpoint}: a preset has untrained weights; give a weight file or a "
                        "bundled model (`nafft models`)")
    note = default_model_note(args.checkpoint)
    if note:
        print(note, file=sys.stderr)
    return opened


class TileProgress:
    """A transient tqdm bar over the tiles of one large image (shown only for tiled predictions, on a terminal: in a
    log file a bar is a line of carriage returns)."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="tile", desc="tiles", file=sys.stderr, dynamic_ncols=True, leave=False,
                            disable=None)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def build_predictor(args: argparse.Namespace, opened, on_tile=None):
    """A Predictor of the opened model configured from the shared options."""
    from nafft.inference import Predictor

    budget = None if args.memory_budget is None else int(args.memory_budget * (1 << 30))
    return Predictor(
        opened,
        tile=args.tile,
        overlap=args.overlap,
        self_ensemble=args.self_ensemble,
        half=args.half,
        memory_budget=budget,
        on_tile=on_tile,
        strength=args.strength,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files, folders (searched recursively for images) or globs; video files (.mp4, .mov, .mkv, "
             ".webm...; needs `pip install 'nafft[video]'`)"
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUT",
                        help="output folder, or an image or video file name for a single input (its suffix sets the "
                             "format). Outputs that exist are replaced (each is written to a temporary file, then "
                             "renamed over it) unless --skip-existing")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave outputs that exist alone and deblur only the missing ones (resumes a batch)")
    parser.add_argument("--start", type=non_negative_float, default=None, metavar="SECONDS",
                        help="video: first second to restore (default: the beginning)")
    parser.add_argument("--end", type=positive_float, default=None, metavar="SECONDS",
                        help="video: second to stop at (default: the end)")
    parser.add_argument("--batch", type=positive_int, default=None, metavar="N",
                        help="video: frames per model call (default: 4 on CUDA; 1 on the CPU, where batches of 720p "
                             "frames measured slower)")
    add_inference_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nafft.cli.console import Progress
    from nafft.errors import UserError
    from nafft.inference.deblur import collect_inputs, deblur_file, existing_outputs, plan_jobs
    from nafft.inference.video import VIDEO_SUFFIXES, is_video_file, plan_video_jobs

    video_specs = list(dict.fromkeys(s for s in args.inputs if is_video_file(s) and Path(s).is_file()))
    image_specs = [s for s in args.inputs if s not in video_specs]
    out_is_video = Path(args.out).suffix.lower() in VIDEO_SUFFIXES and not Path(args.out).is_dir()
    if out_is_video and (image_specs or not video_specs):
        raise UserError(f"-o {args.out} names a video file, but {'images are' if image_specs else 'no video is'} "
                        "given; give a folder")
    if (args.start is not None or args.end is not None) and not video_specs:
        raise UserError("--start and --end apply to videos, and no video is given")
    videos = plan_video_jobs([Path(s) for s in video_specs], args.out)
    opened = open_from_args(args)
    jobs, problems = [], []
    if image_specs:
        inputs, problems = collect_inputs(image_specs)
        jobs, more = plan_jobs(inputs, args.out)
        problems += more
    for line in problems:
        print(f"nafft: error: {line}", file=sys.stderr)
    skipped = 0
    if args.skip_existing:
        jobs, existing = existing_outputs(jobs)
        left = [(source, target) for source, target in videos if not target.exists()]
        skipped = len(existing) + len(videos) - len(left)
        videos = left
    if not jobs and not videos:
        if skipped:
            print(f"nothing to do: all {skipped} outputs exist (--skip-existing)")
            return 1 if problems else 0
        raise UserError("no images to deblur")
    tiles = TileProgress()
    predictor = build_predictor(args, opened, on_tile=tiles)
    print(opened.describe(), file=sys.stderr)
    parts = []
    failed = 0
    if jobs:
        done = 0
        with Progress(len(jobs), "img", "deblur") as progress:
            for job in jobs:
                result = deblur_file(job, predictor)
                tiles.close()
                if result.error:
                    failed += 1
                    progress.write(f"nafft: error: {result.error}")
                else:
                    done += 1
                    if args.strength == "auto" and result.strength is not None:
                        progress.write(f"{job.source}: strength {result.strength:.2f} (auto)")
                progress.update(1, postfix=job.source.name)
        where = jobs[0].target if len(jobs) == 1 else args.out
        parts.append(f"deblurred {done} of {len(jobs)} images into {where}")
    if videos:
        predictor.on_tile = None  # frames are counted instead
        done, frames = _deblur_videos(args, videos, predictor)
        failed += len(videos) - done
        where = videos[0][1] if len(videos) == 1 else args.out
        parts.append(f"deblurred {done} of {len(videos)} videos ({frames} frames) into {where}")
    if failed:
        parts.append(f"{failed} failed")
    if skipped:
        parts.append(f"{skipped} existing output{'s' if skipped > 1 else ''} left as they were (--skip-existing)")
    if problems:
        parts.append(f"{len(problems)} input problem{'s' if len(problems) > 1 else ''} (listed above)")
    print("; ".join(parts))
    return 1 if failed or problems else 0


def _deblur_videos(args: argparse.Namespace, videos, predictor) -> tuple[int, int]:
    """Deblur (video, output) pairs one after the other, a progress count of frames each; (videos done, frames)."""
    from nafft.cli.console import Progress
    from nafft.inference.video import count_frames, deblur_video

    done = frames = 0
    for source, target in videos:
        with Progress(count_frames(source, args.start, args.end), "frame", source.name) as progress:
            result = deblur_video(source, target, predictor, start=args.start, end=args.end, batch=args.batch,
                                  on_frames=progress.update)
        if result.error:
            print(f"nafft: error: {result.error}", file=sys.stderr)
            continue
        done += 1
        frames += result.frames
        height, width = result.size
        copied = f", copied {', '.join(result.copied)}" if result.copied else ""
        print(f"{source} -> {target}: {result.frames} frames of {width}x{height} at {float(result.fps):g} fps, "
              f"{result.codec}{copied}", file=sys.stderr)
    return done, frames
