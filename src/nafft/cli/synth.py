"""`nafft synth`: make synthetic blurred/sharp pairs (dead leaves, package photographs or a folder)."""

from __future__ import annotations

import argparse
import math
import os
import sys

from nafft.cli.args import positive_int

HELP = "make synthetic blurred/sharp pairs with a realistic camera model (no downloads)"

EPILOG = """\
The default is the realistic training generator: per pair an exposure factor in [1-s, 1+s] before clipping
(highlight saturation), Poisson-Gaussian sensor noise in linear light (RSBlur's typical level times a gain in
[1/4, 4]), a random camera response (gamma 2.0-2.6, sRGB or a filmic S-curve), a motion mixture (still,
everyday median 6 px, long 20-40 px), scenes with out-of-focus regions (soft in the target too) and JPEG on a
share of the blurred images; defocus of the input alone is an option, off by default. --profile basic
turns the camera model off (gamma 2.2, sensor noise and 8 bits only, everyday motion); single options then
change what you name. --blur shake is the independent evaluation generator (random-walk shake kernels, sRGB,
Gaussian noise): it takes none of the camera options.
"""


def _size(text: str) -> int:
    value = int(text)
    if value < 8:
        raise argparse.ArgumentTypeError(f"the image side must be at least 8 pixels, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text}")
    return value


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split("-")) if "-" in text else (float(text),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a range LOW-HIGH, got {text}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"a range must satisfy 0 < LOW <= HIGH, got {text}")
    return low, high


def _quality_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(q) for q in text.split("-")) if "-" in text else (int(text),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a JPEG quality or a range LOW-HIGH, got {text}") from None
    if not 1 <= low <= high <= 100:
        raise argparse.ArgumentTypeError(f"JPEG qualities must satisfy 1 <= LOW <= HIGH <= 100, got {text}")
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--source", default="deadleaves", metavar="deadleaves|packages|skimage|DIR",
                        help="procedural dead leaves (default); the sample photographs inside installed packages "
                             "(scikit-image, scikit-learn, matplotlib); scikit-image's only; or a folder of "
                             "sharp images (recursive)")
    parser.add_argument("--count", type=positive_int, required=True, help="number of pairs")
    parser.add_argument("--size", type=_size, default=256, help="image side in pixels, at least 8 (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--out", required=True, help="writes OUT/blur/ and OUT/sharp/ (and OUT/synth.json)")
    parser.add_argument("--profile", choices=("realistic", "basic"), default="realistic",
                        help="realistic: the camera model below (default); basic: all of it off")
    parser.add_argument("--blur", choices=("gopro", "kernel", "shake"), default="gopro",
                        help="gopro: average of frames along a camera path (default); kernel: the path's motion "
                             "kernel; shake: the evaluation generator (random-walk shake kernels)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="motion length multiplier (default 1: everyday median 6 px, long 20-40 px)")
    parser.add_argument("--noise", type=float, default=1.0,
                        help="multiplier of the sensor noise's standard deviation (default 1, 0 = none)")
    camera = parser.add_argument_group("camera model (defaults: realistic profile / basic profile)")
    camera.add_argument("--long-motion", type=_fraction, help="fraction of pairs with a 20-40 px shake (0.25 / 0)")
    camera.add_argument("--still", type=_fraction,
                        help="fraction of pairs with at most 1 px of motion, half of them none (0.1 / 0)")
    camera.add_argument("--defocus", type=_fraction,
                        help="fraction of pairs whose blurred image is also mildly out of focus, disc radius 0.5-2 "
                             "px, target sharp (0 / 0)")
    camera.add_argument("--soft", type=_fraction,
                        help="fraction of scenes with out-of-focus regions or wholly out of focus (depth of field, "
                             "disc radius 1-4 px), in the target too (0.25 / 0)")
    camera.add_argument("--soft-radius", type=_range, metavar="LOW-HIGH",
                        help="disc radius range of the out-of-focus regions in pixels, drawn log-uniformly "
                             "(default 1-4; close-ups and portraits show tens of pixels)")
    camera.add_argument("--bokeh", type=_fraction,
                        help="fraction of out-of-focus scenes with bright highlights that become bokeh discs (0 / 0)")
    camera.add_argument("--noise-gain", type=_range, metavar="LOW-HIGH",
                        help="sensor noise gain over RSBlur's typical level, drawn log-uniformly (default "
                             "0.25-4; a low bound such as 0.01 adds nearly clean pairs)")
    camera.add_argument("--log-uniform", type=_fraction,
                        help="fraction of the moving pairs whose path length is log-uniform in 1-48 px instead "
                             "of the everyday median 6 px (0 / 0)")
    camera.add_argument("--saturation", type=float,
                        help="exposure factor drawn from [1-S, 1+S] before clipping at 1, S in [0, 0.95] "
                             "(0.75 as RSBlur / 0)")
    camera.add_argument("--response", choices=("random", "gamma"),
                        help="camera response curve: random per pair, or gamma 2.2 (random / gamma)")
    camera.add_argument("--jpeg", type=_fraction, help="fraction of blurred images saved through JPEG (0.5 / 0)")
    camera.add_argument("--jpeg-quality", type=_quality_range, metavar="LOW-HIGH",
                        help="JPEG quality range (default 60-95)")
    camera.add_argument("--downscale", type=_range, metavar="LEAST-MOST",
                        help="factor range by which photographs are down-scaled for their crops, drawn "
                             "log-uniformly (default 1-4; 1-1.5 keeps them near their own resolution)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="parallel processes (results do not depend on it; default: all CPUs)")


def settings_from_args(args: argparse.Namespace):
    """The `SynthSettings` the options describe."""
    from nafft.data.synth import CAMERA_OPTIONS, SynthError, SynthSettings

    ranges = ("jpeg_quality", "soft_radius", "noise_gain", "downscale")
    given = {name: getattr(args, name) for name in (*CAMERA_OPTIONS, *ranges) if getattr(args, name) is not None}
    if args.blur == "shake" and set(given) - set(ranges):
        named = ", ".join("--" + name.replace("_", "-") for name in given)
        raise SynthError(f"--blur shake is the evaluation generator and takes no camera options (got {named})")
    common = dict(source=args.source, size=args.size, seed=args.seed, blur=args.blur, strength=args.strength,
                  noise=args.noise, **given)
    return SynthSettings.basic(**common) if args.profile == "basic" else SynthSettings(**common)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from nafft.data.synth import iter_synthesize

    settings = settings_from_args(args)
    pairs, kept = [], 0
    results = iter_synthesize(args.out, settings, args.count, args.workers)
    for result in tqdm(results, total=args.count, unit="pair", desc="synth", file=sys.stderr):
        if result.pair is None:
            kept += 1
        else:
            pairs.append(result.pair)
    print(f"{len(pairs)} pairs written to {args.out}" + (f", {kept} already there" if kept else ""))
    finite = [p.psnr for p in pairs if math.isfinite(p.psnr)]
    if finite:
        q = np.percentile(finite, [0, 10, 50, 90, 100])
        print(f"input PSNR (blur vs sharp) dB: min {q[0]:.1f}, p10 {q[1]:.1f}, median {q[2]:.1f}, "
              f"p90 {q[3]:.1f}, max {q[4]:.1f}; motion px: median {np.median([p.motion_px for p in pairs]):.1f}")
        if settings.blur != "shake":
            print(f"out-of-focus scenes {np.mean([p.soft_px > 0 for p in pairs]):.0%}, "
                  f"defocus {np.mean([p.defocus_px > 0 for p in pairs]):.0%} of pairs, "
                  f"JPEG {np.mean([p.jpeg_quality > 0 for p in pairs]):.0%}, "
                  f"exposure {min(p.exposure for p in pairs):.2f}-{max(p.exposure for p in pairs):.2f}")
    return 0
