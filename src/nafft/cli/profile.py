"""`nafft profile`: parameters, MACs, median forward latency and peak memory of presets or checkpoints."""

from __future__ import annotations

import argparse
import json
import math
import platform
from dataclasses import asdict

from nafft.cli.args import add_threads_argument, device, non_negative_int, positive_int
from nafft.errors import UserError

HELP = "parameters, MACs, forward latency and peak memory of a preset or checkpoint"


def parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x256, got '{text}'")
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nafft.models import PRESETS

    parser.add_argument("models", nargs="*", metavar="PRESET_OR_CHECKPOINT",
                        help=f"preset names ({', '.join(PRESETS)}), bundled model names or checkpoint files")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="CKPT",
                        help="a checkpoint file (or preset name) to profile, as in eval/deblur/export; repeatable")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input HxW (default 256x256)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--runs", type=non_negative_int, default=10,
                        help="timed forward passes (median reported; 0 skips timing)")
    parser.add_argument("--warmup", type=non_negative_int, default=2)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last memory format (default: on the CPU, where it is faster; off on CUDA)")
    parser.add_argument("--tlc", action="store_true", help="TLC local pooling (train size 256)")
    add_threads_argument(parser)
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")


def _open(spec: str, device: str, tlc: bool):
    """The opened model (DO-Conv folded: the inference cost) and its parameter count while training."""
    import torch

    from nafft.inference.opened_model import open_model
    from nafft.models import build_model, enable_tlc

    opened = open_model(spec, device=device, tlc=False)
    if tlc:
        enable_tlc(opened.network, 256)
    with torch.device("meta"):
        train_params = sum(p.numel() for p in build_model(opened.architecture).parameters())
    return opened, train_params


def _json_safe(value):
    """NaN/inf (no timing with --runs 0) become null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    import torch

    from nafft.profiling import profile_model

    specs = [*args.models, *args.checkpoint]
    if not specs:
        raise UserError("give at least one preset name or checkpoint (PRESET_OR_CHECKPOINT or --checkpoint CKPT)")
    results = []
    folded: dict[str, int] = {}
    for spec in specs:
        opened, folded[spec] = _open(spec, args.device, args.tlc)
        results.append(
            profile_model(opened.network, opened.name, size=args.size, device=opened.device, batch=args.batch,
                          runs=args.runs, warmup=args.warmup, channels_last=args.channels_last)
        )
        del opened
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if results and results[0].device.startswith("cuda"):
        machine = f"{torch.cuda.get_device_name(results[0].device)}, torch {torch.__version__}"
    h, w = args.size
    if args.format == "json":
        report = {"machine": machine, "results": [asdict(r) for r in results]}
        print(json.dumps(_json_safe(report), indent=2, allow_nan=False))
    elif args.format == "markdown":
        timed = args.runs > 0
        print(f"| model | params (inference) | params (training) | GMACs @{h}x{w} |"
              + (f" {args.device} ms (median of {args.runs}) |" if timed else ""))
        print("|---|---:|---:|---:|" + ("---:|" if timed else ""))
        for spec, r in zip(specs, results):
            print(f"| `{r.name}` | {r.params:,} | {folded[spec]:,} | {r.macs / 1e9:.2f} |"
                  + (f" {r.latency_ms:.0f} |" if timed else ""))
        print(f"\nMachine: {machine}.")
    else:
        for spec, r in zip(specs, results):
            note = f" (DO-Conv folded; {folded[spec]:,} while training)" if folded[spec] != r.params else ""
            timing = (f", {r.latency_ms:.1f} ms median forward on {r.device}, peak memory {r.peak_memory_mb:.0f} MiB "
                      f"({r.memory_kind})") if args.runs > 0 else ""
            print(f"{r.name}: {r.params:,} parameters{note}, {r.macs / 1e9:.2f} GMACs at {h}x{w} "
                  f"(batch {args.batch}){timing}")
        print(f"machine: {machine}")
    return 0
