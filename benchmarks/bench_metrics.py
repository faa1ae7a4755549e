"""SSIM speed: the torch implementation (nafft.metrics) against the numpy float64 reference it replaced
(tests/metrics_reference.py), interleaved in one process, with the malloc settings of the `nafft` command:

    .venv/bin/python benchmarks/bench_metrics.py --threads 1

A 720p (1280x720 RGB) pair shaped like a restoration (smooth content plus noise); each line gives the median of
`--runs` interleaved calls and the speed-up over numpy, and the largest |torch - numpy| seen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.metrics_reference import ssim3d_numpy, ssim_numpy  # noqa: E402

from nafft.metrics import ssim, ssim3d, ssim_and_ssim3d  # noqa: E402
from nafft.profiling import time_interleaved  # noqa: E402
from nafft.runtime import tune_malloc  # noqa: E402


def restoration_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.cumsum(np.cumsum(rng.normal(size=(height, width, 3)), 0), 1)
    sharp = ((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    pred = np.clip(sharp.astype(int) + rng.integers(-12, 13, sharp.shape), 0, 255).astype(np.uint8)
    return pred, sharp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    malloc = tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    pred, sharp = restoration_pair(*args.size)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, malloc tuning {'on' if malloc else 'off'}; {args.size[1]}x{args.size[0]} RGB")
    values = {}

    def call(name, fn):
        def run():
            values[name] = fn(pred, sharp)

        return run

    fns = {"ssim numpy": ssim_numpy, "ssim torch": ssim, "ssim3d numpy": ssim3d_numpy, "ssim3d torch": ssim3d,
           "both torch (ssim_and_ssim3d)": ssim_and_ssim3d}
    times = time_interleaved({name: call(name, fn) for name, fn in fns.items()}, runs=args.runs)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    for name in fns:
        print(f"  {name:<30} {ms[name]:8.1f} ms")
    both = values["both torch (ssim_and_ssim3d)"]
    diff = max(abs(values["ssim torch"] - values["ssim numpy"]), abs(values["ssim3d torch"] - values["ssim3d numpy"]),
               abs(both[0] - values["ssim numpy"]), abs(both[1] - values["ssim3d numpy"]))
    print(f"  ssim:   numpy / torch = {ms['ssim numpy'] / ms['ssim torch']:.1f}x")
    print(f"  ssim3d: numpy / torch = {ms['ssim3d numpy'] / ms['ssim3d torch']:.1f}x")
    print(f"  both:   numpy (ssim + ssim3d) / torch ssim_and_ssim3d = "
          f"{(ms['ssim numpy'] + ms['ssim3d numpy']) / ms['both torch (ssim_and_ssim3d)']:.1f}x")
    print(f"  max |torch - numpy| = {diff:.1e} (SSIM {values['ssim numpy']:.6f}, SSIM-3D {values['ssim3d numpy']:.6f})")


if __name__ == "__main__":
    main()
