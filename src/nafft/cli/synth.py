"""`nafft synth`: make synthetic blurred/sharp training pairs (dead leaves, scikit-image photos or a folder)."""

from __future__ import annotations

import argparse
import math
import os
import sys

HELP = "make synthetic blurred/sharp pairs (GoPro-style frame averaging or motion kernels), no downloads"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="deadleaves", metavar="deadleaves|skimage|DIR",
                        help="procedural dead leaves (default), scikit-image's photographs, or a folder of sharp "
                             "images")
    parser.add_argument("--count", type=_positive, required=True, help="number of pairs")
    parser.add_argument("--size", type=_positive, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, help="writes OUT/blur/ and OUT/sharp/ (and OUT/synth.json)")
    parser.add_argument("--blur", choices=("gopro", "kernel"), default="gopro",
                        help="gopro: average of frames along a camera trajectory (default); kernel: motion kernel")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="motion length multiplier (default 1: median ~6 px)")
    parser.add_argument("--noise", type=float, default=1.0, help="sensor noise multiplier (default 1, 0 = none)")
    parser.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                        help="parallel processes (results do not depend on it; default: all CPUs)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from nafft.data.synth import SynthSettings, iter_synthesize

    settings = SynthSettings(source=args.source, size=args.size, seed=args.seed, blur=args.blur,
                             strength=args.strength, noise=args.noise)
    psnrs, motions, kept = [], [], 0
    results = iter_synthesize(args.out, settings, args.count, args.workers)
    for result in tqdm(results, total=args.count, unit="pair", desc="synth", file=sys.stderr):
        if result.psnr is None:
            kept += 1
        else:
            psnrs.append(result.psnr)
            motions.append(result.motion_px)
    print(f"{len(psnrs)} pairs written to {args.out}" + (f", {kept} already there" if kept else ""))
    finite = [p for p in psnrs if math.isfinite(p)]
    if finite:
        q = np.percentile(finite, [0, 10, 50, 90, 100])
        print(f"input PSNR (blur vs sharp) dB: min {q[0]:.1f}, p10 {q[1]:.1f}, median {q[2]:.1f}, "
              f"p90 {q[3]:.1f}, max {q[4]:.1f}; motion path px: median {np.median(motions):.1f}")
    return 0
