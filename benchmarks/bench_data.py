"""Data speed, measured side by side in one process (run with jemalloc preloaded on CPU):

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 .venv/bin/python benchmarks/bench_data.py

Sections:
  loader  PairedTrainDataset + SampleSampler through a DataLoader: random 256 crops (+ flips/rotations) from
          512x512 PNG tiles, batch 8, with 0 and 2 workers; pairs/s, and CPU ms per pair.
  train   training steps (forward + PSNR loss + backward + AdamW) at 256x256: nafnet-small batch 8 and nafnet-w32
          batch 4, on an in-memory batch; steps/s and the pairs/s they consume. The ratio loader / train says
          how many times faster the loader is than the model needs; on a CPU shared by loader and model the CPU
          ratio (process time, which other jobs on the machine disturb much less than wall time) is the one that
          counts.
  fed     nafnet-small steps fed by the 2-worker loader against steps on a fixed in-memory batch, alternated in
          blocks: the slowdown is what the loader costs on a shared CPU (workers and model share the cores).
  synth   `synthesize_pairs` defaults (dead leaves, gopro blur) at 256x256: pairs/s with 1 and 2 workers, the
          time that gives for 1,000 pairs, and the input PSNR distribution of the pairs made.

Tiles: `--tiles DIR` (a flat blur/sharp folder of 512x512 tiles, e.g. `nafft prepare` output); by default 32 tiles
are synthesised from scikit-image's photographs (natural-image PNG statistics) into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nafft.data.datasets import PairedTrainDataset, SampleSampler  # noqa: E402
from nafft.data.synth import skimage_photo_paths, synthesize_pairs  # noqa: E402
from nafft.losses import psnr_loss  # noqa: E402
from nafft.models import build_model  # noqa: E402

SECTIONS = ("loader", "train", "fed", "synth")


def loader_cpu_ms(dataset, samples: int) -> float:
    """CPU milliseconds per sample in this process (decode, crop, flip, to tensor): what the loader takes from
    the cores whatever they are shared with."""
    dataset[0]
    start = time.process_time()
    for k in range(1, samples + 1):
        dataset[k]
    return (time.process_time() - start) / samples * 1000


def loader_rate(dataset, batch: int, workers: int, batches: int, start: int = 0) -> float:
    """Pairs per second over `batches` batches, after the first batch (worker start-up) is out of the way."""
    loader = DataLoader(dataset, batch_size=batch, sampler=SampleSampler(start, batch), num_workers=workers,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    it = iter(loader)
    next(it)
    begin = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - begin
    del it
    return batches * batch / elapsed


def make_step(name: str, batch: int):
    torch.manual_seed(0)
    model = build_model(name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.9), weight_decay=1e-3)
    blur = torch.rand(batch, 3, 256, 256)
    sharp = torch.rand(batch, 3, 256, 256)

    def step(b=None):
        x, y = (blur, sharp) if b is None else (b["blur"], b["sharp"])
        optimizer.zero_grad(set_to_none=True)
        loss = psnr_loss(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def median_time(fn, runs: int, warmup: int = 1) -> tuple[float, float]:
    """Median wall and CPU (all threads) seconds per call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=Path, help="folder with blur/ and sharp/ 512x512 tiles")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--batches", type=int, default=12, help="loader batches timed")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (w32 uses fewer)")
    parser.add_argument("--synth-count", type=int, default=48)
    parser.add_argument("--threads", type=int, help="torch threads of this process (default: torch's choice); with "
                        "other jobs on a 2-core machine, 2 OpenMP threads can be many times slower than 1")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (others' work on a shared machine slows every figure)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiles = args.tiles
        if tiles is None and {"loader", "fed"} & set(args.sections):
            tiles = Path(tmp) / "tiles"
            source = "skimage" if skimage_photo_paths() else "deadleaves"
            start = time.perf_counter()
            synthesize_pairs(tiles, source=source, count=32, size=512, seed=1, workers=2)
            print(f"made 32 tiles of 512x512 from '{source}' in {time.perf_counter() - start:.1f} s")
        dataset = PairedTrainDataset(tiles, 256, seed=0) if tiles is not None else None

        if "loader" in args.sections:
            print("\n## loader (256 crops from 512 PNG tiles, batch 8)")
            for workers in (0, 2):
                rate = loader_rate(dataset, 8, workers, args.batches)
                results[f"loader{workers}"] = rate
                print(f"  {workers} workers: {rate:7.1f} pairs/s")
            results["loader_cpu"] = loader_cpu_ms(dataset, 8 * args.batches)
            print(f"  CPU per pair: {results['loader_cpu']:.1f} ms")

        if "train" in args.sections:
            print("\n## train step at 256x256 (forward + PSNR loss + backward + AdamW, in-memory batch)")
            for name, batch, runs in (("nafnet-small", 8, args.steps), ("nafnet-w32", 4, max(2, args.steps // 2))):
                seconds, cpu = median_time(make_step(name, batch), runs)
                results[name] = batch / seconds
                print(f"  {name:<13} batch {batch}: {seconds * 1000:8.0f} ms/step = {batch / seconds:6.2f} pairs/s, "
                      f"CPU {cpu / batch * 1000:7.0f} ms per pair")
                if "loader2" in results:
                    print(f"    wall: the 2-worker loader delivers x{results['loader2'] / (batch / seconds):.1f} the "
                          f"pairs this step consumes; CPU: loading a pair costs "
                          f"{100 * results['loader_cpu'] / (cpu / batch * 1000):.1f}% of training on it")

        if "fed" in args.sections:
            print("\n## nafnet-small batch 8 fed by the 2-worker loader vs a fixed batch (alternating blocks)")
            step = make_step("nafnet-small", 8)
            loader = DataLoader(dataset, batch_size=8, sampler=SampleSampler(0, 8), num_workers=2, prefetch_factor=4)
            it = iter(loader)
            step(next(it))
            fixed, fed = [], []
            for _ in range(3):
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step()
                    fixed.append(time.perf_counter() - start)
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step(next(it))  # waiting for the batch is part of the fed step
                    fed.append(time.perf_counter() - start)
            del it
            t_fixed, t_fed = statistics.median(fixed), statistics.median(fed)
            print(f"  fixed batch: {t_fixed * 1000:6.0f} ms/step   loader-fed: {t_fed * 1000:6.0f} ms/step   "
                  f"slowdown x{t_fed / t_fixed:.2f}")

        if "synth" in args.sections:
            print("\n## synth (dead leaves, gopro blur, 256x256)")
            psnrs = []
            for workers in (1, 2):
                out = Path(tmp) / f"synth{workers}"
                psnrs = []
                start = time.perf_counter()
                synthesize_pairs(out, count=args.synth_count, size=256, seed=0, workers=workers,
                                 progress=lambda r, acc=psnrs: acc.append(r.psnr))
                elapsed = time.perf_counter() - start
                print(f"  {workers} worker(s): {args.synth_count / elapsed:5.2f} pairs/s -> 1,000 pairs in "
                      f"{1000 * elapsed / args.synth_count / 60:4.1f} min")
            q = np.percentile(psnrs, [0, 10, 50, 90, 100])
            print(f"  input PSNR of {len(psnrs)} pairs (dB): min {q[0]:.1f}, p10 {q[1]:.1f}, median {q[2]:.1f}, "
                  f"p90 {q[3]:.1f}, max {q[4]:.1f}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
