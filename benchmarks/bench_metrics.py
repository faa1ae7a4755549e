"""SSIM speed: the torch implementation (nafft.metrics) against the numpy float64 reference it replaced
(benchmarks/reference/metrics.py), interleaved in one process, with the malloc settings of the `nafft` command:

    .venv/bin/python benchmarks/bench_metrics.py --threads 1

A 720p (1280x720 RGB) pair shaped like a restoration (smooth content plus noise). Every function is called once per
round, in turn; the lines give the median time of `--runs` rounds, the speed-ups are medians over the rounds of
numpy's time over torch's in the same round (drifting machine load hits both alike), and the largest
|torch - numpy| seen. `--repeat N` measures N times in a row and ends with every run's speed-ups.
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

from benchmarks.reference.metrics import ssim3d_numpy, ssim_numpy  # noqa: E402

from nafft.malloc_tuning import tune_malloc  # noqa: E402
from nafft.metrics import ssim, ssim3d, ssim_and_ssim3d  # noqa: E402
from nafft.profiling import time_interleaved  # noqa: E402


def restoration_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.cumsum(np.cumsum(rng.normal(size=(height, width, 3)), 0), 1)
    sharp = ((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    pred = np.clip(sharp.astype(int) + rng.integers(-12, 13, sharp.shape), 0, 255).astype(np.uint8)
    return pred, sharp


def speedup(times: dict[str, list[float]], numpy_names: tuple[str, ...], torch_name: str) -> float:
    """Median over rounds of (sum of the numpy functions' times) / (the torch function's time)."""
    rounds = zip(*(times[n] for n in numpy_names), times[torch_name])
    return statistics.median(sum(r[:-1]) / r[-1] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1, help="measure this many times in a row")
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
    summary = []
    for run in range(args.repeat):
        if args.repeat > 1:
            print(f"\n# run {run + 1} of {args.repeat}")
        times = time_interleaved({name: call(name, fn) for name, fn in fns.items()}, runs=args.runs)
        for name in fns:
            print(f"  {name:<30} {statistics.median(times[name]) * 1000:8.1f} ms")
        both = values["both torch (ssim_and_ssim3d)"]
        diff = max(abs(values["ssim torch"] - values["ssim numpy"]),
                   abs(values["ssim3d torch"] - values["ssim3d numpy"]),
                   abs(both[0] - values["ssim numpy"]), abs(both[1] - values["ssim3d numpy"]))
        ups = {"ssim": speedup(times, ("ssim numpy",), "ssim torch"),
               "ssim3d": speedup(times, ("ssim3d numpy",), "ssim3d torch"),
               "both": speedup(times, ("ssim numpy", "ssim3d numpy"), "both torch (ssim_and_ssim3d)")}
        print(f"  ssim:   numpy / torch = {ups['ssim']:.1f}x")
        print(f"  ssim3d: numpy / torch = {ups['ssim3d']:.1f}x")
        print(f"  both:   numpy (ssim + ssim3d) / torch ssim_and_ssim3d = {ups['both']:.1f}x")
        print(f"  max |torch - numpy| = {diff:.1e} (SSIM {values['ssim numpy']:.6f}, "
              f"SSIM-3D {values['ssim3d numpy']:.6f})")
        summary.append(ups)
    if args.repeat > 1:
        print("\n# speed-ups over numpy, run by run")
        for key in summary[0]:
            print(f"  {key:<8} " + "  ".join(f"{r[key]:.1f}x" for r in summary))


if __name__ == "__main__":
    main()
