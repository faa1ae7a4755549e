"""`nafft deblur`: deblur image files, folders or globs (with the bundled default model or a checkpoint)."""

from __future__ import annotations

import argparse
import sys

from nafft.cli.args import add_threads_argument, device, non_negative_int, positive_float

HELP = "deblur image files, folders or globs (any size; keeps bit depth and alpha)"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by deblur and eval: model, device, TLC, tiling, precision, threads."""
    parser.add_argument(
        "--checkpoint", metavar="CKPT",
        help="weights: a nafft .safetensors, an official NAFNet .pth or a bundled model's name (default: the "
             "bundled default model, see `nafft models`)"
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

    opened = open_model(args.checkpoint, device=args.device, tlc=args.tlc, channels_last=args.channels_last)
    if not opened.trained:
        raise UserError(f"--checkpoint {args.checkpoint}: a preset has untrained weights; give a weight file or a "
                        "bundled model (`nafft models`)")
    note = default_model_note(args.checkpoint)
    if note:
        print(note, file=sys.stderr)
    return opened


class TileProgress:
    """A transient tqdm bar over the tiles of one large image (shown only for tiled predictions)."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="tile", desc="tiles", file=sys.stderr, dynamic_ncols=True, leave=False)
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
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs"
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUT",
                        help="output folder, or an image file name for a single input (its suffix sets the format)")
    add_inference_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nafft.errors import UserError
    from nafft.inference.deblur import collect_inputs, deblur_file, plan_jobs

    opened = open_from_args(args)
    inputs, problems = collect_inputs(args.inputs)
    jobs, more = plan_jobs(inputs, args.out)
    problems += more
    for line in problems:
        print(f"nafft: error: {line}", file=sys.stderr)
    if not jobs:
        raise UserError("no images to deblur")
    tiles = TileProgress()
    predictor = build_predictor(args, opened, on_tile=tiles)
    print(opened.describe(), file=sys.stderr)
    failed = done = 0
    bar = tqdm(jobs, unit="img", desc="deblur", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str(job.source.name, refresh=False)
        result = deblur_file(job, predictor)
        tiles.close()
        if result.error:
            failed += 1
            tqdm.write(f"nafft: error: {result.error}", file=sys.stderr)
        else:
            done += 1
    bar.close()
    where = jobs[0].target if len(jobs) == 1 else args.out
    parts = [f"deblurred {done} of {len(jobs)} images into {where}"]
    if failed:
        parts.append(f"{failed} failed")
    if problems:
        parts.append(f"{len(problems)} input problem{'s' if len(problems) > 1 else ''} (listed above)")
    print("; ".join(parts))
    return 1 if failed or problems else 0
