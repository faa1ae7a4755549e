"""`nafft eval`: PSNR / SSIM / 3-D SSIM of a checkpoint on a folder of blurred/sharp pairs, with a report."""

from __future__ import annotations

import argparse
import sys

from nafft.cli.args import non_negative_int
from nafft.cli.deblur import TileProgress, add_inference_arguments, open_from_args

HELP = "evaluate a checkpoint on blur/sharp pairs: per-image metrics, summary, report and panels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="pair folder: DIR/{blur,sharp} or DIR/SEQ/{blur,sharp}"
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT", help="output folder for the CSV, summary and report"
    )
    parser.add_argument(
        "--save-images", action="store_true", help="write every prediction to OUT/images/NAME.png"
    )
    parser.add_argument(
        "--panels", type=non_negative_int, default=4, metavar="N",
        help="images that get comparison panels (default 4)"
    )
    parser.add_argument(
        "--limit", type=non_negative_int, default=0, metavar="N", help="evaluate the first N pairs only (0 = all)"
    )
    add_inference_arguments(parser)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from nafft.engine.evaluate import evaluate_model

    opened = open_from_args(args)
    print(opened.describe(), file=sys.stderr)
    tiles = TileProgress()
    # no bar when stderr is not a terminal: in a log file a bar is one line of carriage returns with messages inside
    bar = tqdm(total=0, unit="img", desc="eval", file=sys.stderr, dynamic_ncols=True, disable=None)
    start = time.perf_counter()

    def on_start(total: int) -> None:
        nonlocal start
        bar.reset(total=total)
        start = time.perf_counter()

    done = 0

    def on_image(index: int, total: int, record) -> None:
        nonlocal done
        done += 1
        tiles.close()
        bar.update(1)
        bar.set_postfix_str(f"PSNR {record.metrics['psnr']:.2f}", refresh=False)
        if done == 1 and total > 1:
            per_image = time.perf_counter() - start
            tqdm.write(
                f"first image {record.width}x{record.height}: {per_image:.1f} s on {opened.device}; "
                f"the {total} images will take about {_duration(per_image * total)}",
                file=sys.stderr,
            )

    try:
        result = evaluate_model(
            opened,
            args.data,
            args.out,
            tile=args.tile,
            overlap=args.overlap,
            self_ensemble=args.self_ensemble,
            strength=args.strength,
            half=args.half,
            memory_budget=None if args.memory_budget is None else int(args.memory_budget * (1 << 30)),
            limit=args.limit,
            save_images=args.save_images,
            panels=args.panels,
            on_start=on_start,
            on_image=on_image,
            on_tile=tiles,
        )
    finally:
        bar.close()
    for line in result.problems:
        print(f"nafft: error: {line}", file=sys.stderr)
    s = result.summary
    print(
        f"{s['images']} images: PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.4f}, SSIM-3D {s['ssim3d']:.4f} "
        f"(blurred input: {s['input_psnr']:.2f} dB, {s['input_ssim']:.4f}, {s['input_ssim3d']:.4f}); "
        f"{s['seconds_per_image']:.2f} s/image; report in {args.out}/report.md"
        if s["images"] and s["psnr"] is not None and s["input_psnr"] is not None
        else f"{s['images']} images evaluated; report in {args.out}/report.md"
    )
    return 1 if result.problems else 0
