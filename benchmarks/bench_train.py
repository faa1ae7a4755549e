"""Training-step speed of the nafft engine against a plain eager PyTorch loop, measured side by side.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 .venv/bin/python benchmarks/bench_train.py

CPU section (always): `nafnet-w32`, batch 4, 256x256 crops, official recipe (PSNR loss, AdamW, grad-norm clipping
0.01, per-iteration cosine). Four variants are timed in interleaved rounds (one step of each per round, so that the
load of a shared machine hits all of them alike), median step time reported:

    plain      model(x) -> psnr_loss -> backward -> AdamW.step, float32, contiguous (NCHW) memory
    engine     `Trainer.step` of a real Trainer: the same maths plus the schedule, clipping, the non-finite guard
               and per-term loss logging
    plain+cl / engine+cl   the same with channels_last memory format (`train.channels_last`)

The ratios printed are engine / plain (the engine's overhead) and channels_last / contiguous.

GPU section (when CUDA is available): the engine's step in float32 against bf16 autocast + channels_last (and fp16
with the gradient scaler), batch `--gpu-batch`, images/s and the speed-up, with the card's name.

The data loader is not part of these timings (fixed in-memory batches); `bench_data.py` measures it.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nafft.engine.config import build_config  # noqa: E402
from nafft.engine.trainer import Trainer  # noqa: E402
from nafft.losses import psnr_loss  # noqa: E402
from nafft.models import build_model  # noqa: E402


def _pairs(root: Path, size: int) -> Path:
    """Two random pairs, only so that a Trainer can be built (the timed steps use in-memory batches)."""
    rng = np.random.default_rng(0)
    for sub in ("blur", "sharp"):
        (root / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / sub / f"{i}.png")
    return root


def _trainer(data_dir: Path, run_dir: Path, preset: str, batch: int, size: int, device: str, **train) -> Trainer:
    mapping = {
        "model": {"preset": preset},
        "data": {"train": str(data_dir), "val": None, "patch_size": size, "batch_size": batch, "num_workers": 0},
        "train": {"iterations": 1_000_000, "tensorboard": False, "device": device, **train},
    }
    return Trainer(build_config(mapping, ()), run_dir)


class Plain:
    """The textbook loop: float32, no clipping, no schedule, no guard."""

    def __init__(self, preset: str, device: str, channels_last: bool):
        torch.manual_seed(0)
        self.model = build_model(preset).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.9), weight_decay=1e-3)
        self.channels_last = channels_last

    def step(self, blur: torch.Tensor, sharp: torch.Tensor) -> None:
        if self.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
            sharp = sharp.contiguous(memory_format=torch.channels_last)
        self.opt.zero_grad(set_to_none=True)
        psnr_loss(self.model(blur), sharp).backward()
        self.opt.step()


class Engine:
    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.iteration = 0

    def step(self, blur: torch.Tensor, sharp: torch.Tensor) -> None:
        t = self.trainer
        if t.config.train.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
            sharp = sharp.contiguous(memory_format=torch.channels_last)
        t.schedule.apply(t.optimizer, self.iteration)
        terms, _, status = t.step(blur, sharp)
        assert status != "skipped"
        float(terms[0])  # what the loop reads every step (progress bar)
        self.iteration += 1


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(variants: dict, batch: tuple[torch.Tensor, torch.Tensor], rounds: int, warmup: int, device: str):
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        for name, runner in variants.items():
            _sync(device)
            start = time.perf_counter()
            runner.step(*batch)
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
        print(f"  round {r + 1}/{warmup + rounds} done", file=sys.stderr, flush=True)
    return {name: statistics.median(ts) for name, ts in times.items()}, times


def cpu_section(args, tmp: Path) -> None:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    data = _pairs(tmp / "pairs", args.size)
    gen = torch.Generator().manual_seed(0)
    blur = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    sharp = (blur + 0.05 * torch.randn(blur.shape, generator=gen)).clamp(0, 1)
    variants = {
        "plain": Plain(args.preset, "cpu", False),
        "engine": Engine(_trainer(data, tmp / "run_a", args.preset, args.batch, args.size, "cpu")),
        "plain+cl": Plain(args.preset, "cpu", True),
        "engine+cl": Engine(
            _trainer(data, tmp / "run_b", args.preset, args.batch, args.size, "cpu", channels_last=True)
        ),
    }
    medians, times = interleaved(variants, (blur, sharp), args.rounds, args.warmup, "cpu")
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; {args.preset}, batch {args.batch}, {args.size}x{args.size}, float32, "
          f"median of {args.rounds} interleaved rounds")
    for name, median in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:10s} {median:7.3f} s/step  {args.batch / median:6.2f} images/s   [{spread}]")
    print(f"  engine / plain (contiguous):        {medians['engine'] / medians['plain']:.3f}x time")
    print(f"  engine / plain (channels_last):     {medians['engine+cl'] / medians['plain+cl']:.3f}x time")
    print(f"  channels_last / contiguous, engine: {medians['engine+cl'] / medians['engine']:.3f}x time")
    print(f"  channels_last / contiguous, plain:  {medians['plain+cl'] / medians['plain']:.3f}x time")
    for runner in variants.values():
        if isinstance(runner, Engine):
            runner.trainer.close()
    del variants
    gc.collect()


def gpu_section(args, tmp: Path) -> None:
    if not torch.cuda.is_available():
        print("GPU: CUDA not available here; GPU section skipped")
        return
    device = "cuda"
    name = torch.cuda.get_device_name()
    data = _pairs(tmp / "gpu_pairs", args.size)
    gen = torch.Generator().manual_seed(0)
    blur = torch.rand(args.gpu_batch, 3, args.size, args.size, generator=gen).to(device)
    sharp = (blur + 0.05 * torch.randn(blur.shape, generator=gen).to(device)).clamp(0, 1)
    variants = {
        "fp32": Engine(_trainer(data, tmp / "g1", args.preset, args.gpu_batch, args.size, device)),
        "bf16+cl": Engine(_trainer(data, tmp / "g2", args.preset, args.gpu_batch, args.size, device,
                                   amp="bf16", channels_last=True)),
        "fp16+cl": Engine(_trainer(data, tmp / "g3", args.preset, args.gpu_batch, args.size, device,
                                   amp="fp16", channels_last=True)),
    }
    medians, _ = interleaved(variants, (blur, sharp), args.gpu_rounds, args.warmup + 2, device)
    print(f"GPU: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}; {args.preset}, batch "
          f"{args.gpu_batch}, {args.size}x{args.size}, median of {args.gpu_rounds} interleaved rounds")
    for key, median in medians.items():
        print(f"  {key:8s} {median * 1000:8.1f} ms/step  {args.gpu_batch / median:8.1f} images/s")
    print(f"  bf16+channels_last / fp32: {medians['fp32'] / medians['bf16+cl']:.2f}x images/s (target >= 1.8x)")
    print(f"  fp16+channels_last / fp32: {medians['fp32'] / medians['fp16+cl']:.2f}x images/s")
    for runner in variants.values():
        runner.trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nafnet-w32")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpu-batch", type=int, default=16)
    parser.add_argument("--gpu-rounds", type=int, default=20)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_cpu:
            cpu_section(args, Path(tmp))
        gpu_section(args, Path(tmp))


if __name__ == "__main__":
    main()
