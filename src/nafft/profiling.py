"""Cost of a model: parameters, multiply-accumulates, forward latency and peak memory.

MACs are counted with `torch.utils.flop_counter` (convolutions and matrix products, also functional ones such as
ECA's per-pixel channel convolution under TLC and the oneDNN 1x1 convolutions of the channels_last path; FFTs and
element-wise operations are not counted), so they agree with
the figures papers quote (NAFNet-w32: ~16.0 GMACs at 256x256).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, flop_registry, register_flop_formula

if torch.ops.aten.mkldnn_convolution not in flop_registry:
    # NAFNet's channels_last path (the CPU default) calls oneDNN's convolution directly; PyTorch counts only the
    # generic convolution ops.
    @register_flop_formula(torch.ops.aten.mkldnn_convolution)
    def _mkldnn_convolution_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


@dataclass(frozen=True)
class Profile:
    name: str
    params: int
    macs: int
    size: tuple[int, int]
    device: str
    latency_ms: float
    latency_runs: tuple[float, ...]
    peak_memory_mb: float
    memory_kind: str


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, size: tuple[int, int], img_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a (1, C, H, W) input."""
    param = next(model.parameters())
    x = torch.zeros(1, img_channels, *size, device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(model: nn.Module, x: torch.Tensor, runs: int = 10, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of `runs` forward passes after `warmup` untimed ones."""
    for _ in range(warmup):
        model(x)
    _sync(x.device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(fns: dict[str, callable], runs: int = 7, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, calling them in turn (round robin) so that drifting machine load hits
    every candidate alike; `warmup` untimed rounds first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def profile_model(
    model: nn.Module,
    name: str,
    size: tuple[int, int] = (256, 256),
    device: str | torch.device = "cpu",
    batch: int = 1,
    runs: int = 10,
    warmup: int = 2,
    channels_last: bool | None = None,
) -> Profile:
    """Parameters, MACs, median forward latency and peak memory of `model` on a (batch, C, H, W) input.

    `channels_last`: the memory format (`nafft.models.set_memory_format`); None, the default, is the model's own
    choice for the device (NAFNet: channels_last on the CPU).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    img_channels = getattr(getattr(model, "config", None), "img_channels", 3)
    macs = count_macs(model, size, img_channels)
    x = torch.rand(batch, img_channels, *size, device=device)
    from nafft.models.convert import set_memory_format

    set_memory_format(model, channels_last if channels_last is not None else getattr(model, "channels_last", None))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = measure_latency(model, x, runs=runs, warmup=warmup) if runs > 0 else []
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    else:
        peak, kind = peak_rss_mb(), "process peak RSS"
    return Profile(
        name=name,
        params=count_parameters(model),
        macs=macs * batch,
        size=tuple(size),
        device=str(device),
        latency_ms=statistics.median(times) * 1000 if times else float("nan"),
        latency_runs=tuple(t * 1000 for t in times),
        peak_memory_mb=peak,
        memory_kind=kind,
    )
