"""`nafft deblur`: deblur image files, folders or globs with a checkpoint."""

from __future__ import annotations

import argparse
import sys

HELP = "deblur image files, folders or globs (any size; keeps bit depth and alpha)"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by deblur and eval: model, device, TLC, tiling, precision."""
    parser.add_argument(
        "--checkpoint", metavar="CKPT", help="weights: a nafft .safetensors or an official NAFNet .pth"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument(
        "--tlc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TLC local pooling with the checkpoint's training patch size (256 for official weights); default on",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help="tile side in pixels (default: only when the image would not fit the memory budget; 0 = never)",
    )
    parser.add_argument(
        "--overlap", type=int, default=32, metavar="M", help="least overlap between tiles (default 32)"
    )
    parser.add_argument(
        "--self-ensemble", action="store_true", help="average over 8 flips/transpositions (8x time)"
    )
    parser.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="GB",
        help="activation memory one forward pass may use before tiling (default: 40%% of free RAM, 70%% of GPU)",
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="NHWC memory format (often faster on CPU)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def build_predictor(args: argparse.Namespace):
    """The loaded model and a Predictor configured from the shared options."""
    import torch

    from nafft.inference import Predictor, load_for_inference, require_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = require_checkpoint(args.checkpoint)
    loaded = load_for_inference(checkpoint, tlc=args.tlc)
    budget = None if args.memory_budget is None else int(args.memory_budget * (1 << 30))
    predictor = Predictor(
        loaded.model,
        device=args.device,
        tile=args.tile,
        overlap=args.overlap,
        self_ensemble=args.self_ensemble,
        half=args.half,
        memory_budget=budget,
        channels_last=args.channels_last,
    )
    return loaded, predictor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs"
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    add_inference_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nafft.errors import UserError
    from nafft.inference.deblur import collect_inputs, deblur_file, plan_jobs
    from nafft.inference.loading import require_checkpoint

    require_checkpoint(args.checkpoint)  # before any work, with the hint on where weights come from
    inputs, problems = collect_inputs(args.inputs)
    jobs, more = plan_jobs(inputs, args.out)
    problems += more
    for line in problems:
        print(f"nafft: error: {line}", file=sys.stderr)
    if not jobs:
        raise UserError("no images to deblur")
    loaded, predictor = build_predictor(args)
    print(f"{loaded.describe()}; device {predictor.device}", file=sys.stderr)
    failed = len(problems)
    done = 0
    bar = tqdm(jobs, unit="img", desc="deblur", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str(job.source.name, refresh=False)
        result = deblur_file(job, predictor)
        if result.error:
            failed += 1
            tqdm.write(f"nafft: error: {result.error}", file=sys.stderr)
        else:
            done += 1
    bar.close()
    print(
        f"deblurred {done} of {len(jobs)} images into {args.out}" + (f"; {failed} failed" if failed else "")
    )
    return 1 if failed else 0
