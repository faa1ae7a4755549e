"""`nafft profile`: parameters, MACs, median forward latency and peak memory of presets or checkpoints."""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import asdict
from pathlib import Path

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

    parser.add_argument("models", nargs="+", metavar="PRESET_OR_CHECKPOINT",
                        help=f"preset names ({', '.join(PRESETS)}) or checkpoint files")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input HxW (default 256x256)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10, help="timed forward passes (median reported; 0 skips timing)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--tlc", action="store_true", help="TLC local pooling (train size 256)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")


def _build(spec: str):
    from nafft.models import PRESETS, build_model, load_model, reparameterize

    if spec in PRESETS:
        model = build_model(spec)
    elif Path(spec).exists():
        model = load_model(spec)
    else:
        from nafft.config import suggest

        raise UserError(f"'{spec}' is neither a preset{suggest(spec, PRESETS)} nor an existing checkpoint file")
    train_params = sum(p.numel() for p in model.parameters())
    # Inference cost: DO-Conv folds away.
    return reparameterize(model), train_params


def run(args: argparse.Namespace) -> int:
    import torch

    from nafft.models import enable_tlc
    from nafft.profiling import profile_model

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    folded: dict[str, int] = {}
    for spec in args.models:
        model, train_params = _build(spec)
        folded[spec] = train_params
        if args.tlc:
            enable_tlc(model, 256)
        results.append(
            profile_model(model, Path(spec).stem if Path(spec).exists() else spec, size=args.size,
                          device=args.device, batch=args.batch, runs=args.runs, warmup=args.warmup,
                          channels_last=args.channels_last)
        )
        del model
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    h, w = args.size
    if args.format == "json":
        print(json.dumps({"machine": machine, "results": [asdict(r) for r in results]}, indent=2))
    elif args.format == "markdown":
        timed = args.runs > 0
        print(f"| model | params (inference) | params (training) | GMACs @{h}x{w} |"
              + (f" {args.device} ms (median of {args.runs}) |" if timed else ""))
        print("|---|---:|---:|---:|" + ("---:|" if timed else ""))
        for spec, r in zip(args.models, results):
            print(f"| `{r.name}` | {r.params:,} | {folded[spec]:,} | {r.macs / 1e9:.2f} |"
                  + (f" {r.latency_ms:.0f} |" if timed else ""))
        print(f"\nMachine: {machine}.")
    else:
        for spec, r in zip(args.models, results):
            note = f" (DO-Conv folded; {folded[spec]:,} while training)" if folded[spec] != r.params else ""
            timing = (f", {r.latency_ms:.1f} ms median forward on {r.device}, peak memory {r.peak_memory_mb:.0f} MiB "
                      f"({r.memory_kind})") if args.runs > 0 else ""
            print(f"{r.name}: {r.params:,} parameters{note}, {r.macs / 1e9:.2f} GMACs at {h}x{w} "
                  f"(batch {args.batch}){timing}")
        print(f"machine: {machine}")
    return 0
