"""One command that checks nafft on a CUDA machine and writes what it found (a JSON file and a short text report):

    .venv/bin/python benchmarks/gpu_check.py --out runs/gpu_check

Sections, in order, within `--budget` seconds (480 by default; the compiled training runs are the ones dropped when
time runs short, and the report says so):
  env       torch, CUDA, the card, bf16 support, NCCL
  tests     the CUDA-marked tests (`pytest -m cuda`)
  train     training steps of `--model` (nafnet-w32) at `--train-size` (256) in float32, bf16 and fp16 (with the
            gradient scaler), NCHW and channels_last, eager and `torch.compile`d: images/s each, bf16 / float32
  eval      `nafft eval` with TLC (the default) on `--eval-images` synthetic 720p pairs, a checkpoint of `--model`
  tiling    the automatic tiling budget on GPU memory for a 3840x2160 image: the default budget, and a small forced
            budget that must tile; the measured peak against the budget and against nafft's estimate
  ddp       a one-process DistributedDataParallel training of a few iterations over NCCL
On a machine without CUDA the CPU parts run (float32 and bf16 eager training on the CPU, `nafft eval` on the CPU,
DDP over gloo) and every other part is listed as skipped with its reason. The exit status is 1 when a part failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nafft.malloc_tuning import tune_malloc  # noqa: E402
from nafft.models import build_model, enable_tlc, save_model, set_memory_format  # noqa: E402

FOUR_K = (2160, 3840)
SMALL_BUDGET = 2 << 30  # bytes: forces tiling of a 4K image for any NAFNet


class Skipped(Exception):
    """A section (or part of one) that cannot run here; the message says why."""


class Check:
    """Runs the sections against one deadline and collects their results."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.deadline = time.monotonic() + args.budget
        self.sections: dict[str, dict] = {}
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def skip(self, what: str, reason: str) -> dict:
        self.skipped.append(f"{what}: {reason}")
        return {"status": "skipped", "reason": reason}

    def run(self, name: str, fn: Callable[[], dict]) -> None:
        start = time.monotonic()
        print(f"[{name}] ...", flush=True)
        try:
            result = {"status": "ok", **fn()}
        except Skipped as exc:
            result = self.skip(name, str(exc))
        except Exception as exc:  # a check that breaks is a finding: record it and go on with the others
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=8)}
        result["seconds"] = round(time.monotonic() - start, 1)
        self.sections[name] = result
        print(f"[{name}] {result['status']} ({result['seconds']} s)"
              + (f": {result.get('reason') or result.get('error')}" if result["status"] != "ok" else ""), flush=True)


# ------------------------------------------------------------------------------------------------------ sections


def section_env(check: Check) -> dict:
    import torch.distributed as dist

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_used": check.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "nccl_available": dist.is_available() and dist.is_nccl_available(),
    }
    if check.cuda:
        props = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "gpus": torch.cuda.device_count(),
        }
    return env


def section_tests(check: Check) -> dict:
    if not check.cuda:
        raise Skipped("no CUDA device (the CUDA-marked tests skip themselves here)")
    budget = max(30.0, min(check.left() * 0.3, 180.0))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=budget,
    )
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail[-1] if tail else "")}
    if proc.returncode not in (0, 5):  # 5: no tests collected
        raise RuntimeError(f"pytest -m cuda exited {proc.returncode}: " + " | ".join(tail[-5:]))
    return {"counts": counts, "output_tail": tail}


def _train_steps(check: Check, dtype: str, channels_last: bool, compiled: bool) -> dict:
    args, device = check.args, check.device
    torch.manual_seed(0)
    model = build_model(args.model).to(device).train()
    set_memory_format(model, channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(args.batch, 3, args.train_size, args.train_size, device=device).contiguous(memory_format=fmt)
    y = torch.rand_like(x)
    net = torch.compile(model) if compiled else model

    def step() -> float:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred = net(x)
        loss = (pred.float() - y).abs().mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    sync()
    elapsed = time.perf_counter() - start
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"non-finite training loss: {losses}")
    out = {"images_per_s": round(args.batch * args.steps / elapsed, 2), "step_ms": round(1000 * elapsed / args.steps, 1),
           "warmup_s": round(warmup_s, 1), "loss": round(losses[-1], 5)}
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def section_train(check: Check) -> dict:
    args = check.args
    runs, ratios = {}, {}
    plan = [(mode, dtype, fmt) for mode in ("eager", "compiled") for dtype in ("float32", "bf16", "fp16")
            for fmt in ("nchw", "channels_last")]
    compile_s = None
    for mode, dtype, fmt in plan:
        name = f"{dtype} {fmt} {mode}"
        if dtype == "fp16" and not check.cuda:
            runs[name] = check.skip(f"train {name}", "float16 training needs CUDA (the gradient scaler's use case)")
            continue
        if dtype == "bf16" and check.cuda and not torch.cuda.is_bf16_supported():
            runs[name] = check.skip(f"train {name}", "this GPU has no bf16")
            continue
        if mode == "compiled" and not check.cuda and not args.compile:
            runs[name] = check.skip(f"train {name}", "torch.compile on the CPU takes minutes; --compile runs it")
            continue
        need = (compile_s or 60.0) + 30.0 if mode == "compiled" else 15.0
        if check.left() < need + args.reserve:
            runs[name] = check.skip(f"train {name}", f"time budget: {check.left():.0f} s left, about {need:.0f} s needed")
            continue
        try:
            runs[name] = {"status": "ok", **_train_steps(check, dtype, fmt == "channels_last", mode == "compiled")}
            if mode == "compiled":
                compile_s = max(compile_s or 0.0, runs[name]["warmup_s"])
        except Exception as exc:
            runs[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if check.cuda:
                torch.cuda.empty_cache()
        print(f"  train {name}: {runs[name]}", flush=True)
    for mode in ("eager", "compiled"):
        for fmt in ("nchw", "channels_last"):
            fp32, bf16 = runs.get(f"float32 {fmt} {mode}", {}), runs.get(f"bf16 {fmt} {mode}", {})
            if "images_per_s" in fp32 and "images_per_s" in bf16:
                ratios[f"bf16 / float32, {fmt} {mode}"] = round(bf16["images_per_s"] / fp32["images_per_s"], 3)
    failed = [name for name, r in runs.items() if r["status"] == "failed"]
    if failed:
        raise RuntimeError(f"training failed for {', '.join(failed)}: " + "; ".join(runs[n]["error"] for n in failed))
    return {"model": args.model, "size": args.train_size, "batch": args.batch, "steps": args.steps,
            "runs": runs, "bf16_over_float32": ratios}


def _synthetic_pairs(root: Path, count: int, height: int, width: int) -> None:
    """Smooth random photographs-to-be and a horizontal 9-px box blur of each, as 8-bit PNG pairs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("blur", "sharp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = rng.random((height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
        sharp = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], scale_factor=16,
                                                mode="bicubic", align_corners=False)[0, :, :height, :width]
        sharp = (sharp + 0.1 * torch.rand(sharp.shape, generator=torch.Generator().manual_seed(i))).clamp(0, 1)
        blur = torch.nn.functional.avg_pool2d(sharp[None], (1, 9), stride=1, padding=(0, 4), count_include_pad=False)[0]
        for folder, img in (("sharp", sharp), ("blur", blur)):
            pixels = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i:03d}.png")


def _checkpoint(path: Path, model_name: str, patch_size: int) -> Path:
    from nafft.models.checkpoint import TRAIN_CONFIG_KEY

    torch.manual_seed(0)
    model = build_model(model_name)
    with torch.no_grad():  # beta/gamma start at 0, which would make every block an identity
        for name, p in model.named_parameters():
            if name.endswith((".beta", ".gamma")):
                p.normal_(0.0, 0.05)
    return save_model(model, path, metadata={TRAIN_CONFIG_KEY: json.dumps({"data": {"patch_size": patch_size}})})


def section_eval(check: Check) -> dict:
    args = check.args
    height, width = args.eval_size
    with tempfile.TemporaryDirectory(prefix="nafft-gpu-check-") as tmp:
        tmp = Path(tmp)
        _synthetic_pairs(tmp / "data", args.eval_images, height, width)
        ckpt = _checkpoint(tmp / "model.safetensors", args.model, args.patch_size)
        cmd = [sys.executable, "-m", "nafft", "eval", "--checkpoint", str(ckpt), "--data", str(tmp / "data"),
               "-o", str(tmp / "eval"), "--device", check.device.type, "--panels", "0"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(60.0, check.left()))
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"nafft eval exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        summary = json.loads((tmp / "eval" / "summary.json").read_text())
    settings = summary.get("settings", {})
    if not settings.get("tlc"):
        raise RuntimeError(f"nafft eval ran without TLC: {settings}")
    return {"images": summary["images"], "size": f"{width}x{height}", "device": settings.get("device"),
            "tlc_train_size": settings.get("tlc_train_size"), "seconds_per_image": round(summary["seconds_per_image"], 3),
            "wall_s": round(wall, 1), "psnr": summary.get("psnr"), "ssim3d": summary.get("ssim3d"),
            "last_line": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""}


def section_tiling(check: Check) -> dict:
    if not check.cuda:
        raise Skipped("needs CUDA memory (the CPU budget arithmetic is covered by the test suite)")
    from nafft.inference import OpenedModel, Predictor, estimate_memory

    args = check.args
    model = OpenedModel.from_network(enable_tlc(build_model(args.model).eval(), args.patch_size), device="cuda")
    height, width = FOUR_K
    image = torch.rand(3, height, width)
    out = {"image": f"{width}x{height}", "model": args.model,
           "estimate_gib": round(estimate_memory(model, height, width) / 2**30, 2)}
    for label, budget in (("default budget", None), ("forced 2 GiB budget", SMALL_BUDGET)):
        if check.left() < 30 + args.reserve:
            out[label] = check.skip(f"tiling {label}", "time budget")
            continue
        predictor = Predictor(model, memory_budget=budget)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        tile = predictor.tile_for(height, width)
        start = time.perf_counter()
        pred = predictor(image)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() - base
        if pred.shape != image.shape or not torch.isfinite(pred).all():
            raise RuntimeError(f"{label}: bad output {tuple(pred.shape)}")
        within = peak <= predictor.memory_budget
        out[label] = {"budget_gib": round(predictor.memory_budget / 2**30, 2), "tile": tile,
                      "tiles": predictor.last_tiles, "peak_gib": round(peak / 2**30, 2), "within_budget": within,
                      "seconds": round(seconds, 2)}
        if not within:
            raise RuntimeError(f"{label}: peak {peak / 2**30:.2f} GiB over the budget "
                               f"{predictor.memory_budget / 2**30:.2f} GiB (tile {tile})")
        if budget is not None and tile is None:
            raise RuntimeError(f"{label}: a {width}x{height} image was not tiled within {budget / 2**30:.0f} GiB")
        del predictor, pred
    return out


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section_ddp(check: Check) -> dict:
    import torch.distributed as dist

    backend = "nccl" if check.cuda else "gloo"
    if check.cuda and not dist.is_nccl_available():
        raise RuntimeError("CUDA is here but torch.distributed has no NCCL")
    if not check.cuda:
        check.skipped.append("ddp nccl: no CUDA device (ran one process over gloo instead)")
    args, device = check.args, check.device
    kwargs = {"device_id": torch.device("cuda", torch.cuda.current_device())} if check.cuda else {}
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1, **kwargs)
    try:
        torch.manual_seed(0)
        model = set_memory_format(build_model(args.model).to(device).train())  # weights as the gradients come
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0] if check.cuda else None)
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
        size = min(args.train_size, 128)
        x = torch.rand(2, 3, size, size, device=device)
        before = next(model.parameters()).detach().clone()
        losses = []
        for _ in range(args.ddp_steps):
            loss = (ddp(x) - x).abs().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        total = torch.ones(1, device=device)
        dist.all_reduce(total)
        if not all(math.isfinite(v) for v in losses) or torch.equal(before, next(model.parameters()).detach()):
            raise RuntimeError(f"DDP training did not train: losses {losses}")
    finally:
        dist.destroy_process_group()
    return {"backend": backend, "world_size": 1, "steps": args.ddp_steps, "losses": [round(v, 5) for v in losses],
            "all_reduce": float(total.item())}


SECTIONS = {"env": section_env, "tests": section_tests, "train": section_train, "eval": section_eval,
            "tiling": section_tiling, "ddp": section_ddp}


# ------------------------------------------------------------------------------------------------------ report


def text_report(check: Check, result: dict) -> str:
    env = result["sections"].get("env", {})
    where = env.get("gpu") or f"CPU only ({env.get('cpu')}, {env.get('cpus')} CPUs)"
    lines = [f"nafft GPU check: {where}, torch {env.get('torch')}, {result['seconds']} s", ""]
    for name, sec in result["sections"].items():
        detail = sec.get("reason") or sec.get("error") or ""
        lines.append(f"{name:<7} {sec['status']:<8} {sec['seconds']:>6} s  {detail}".rstrip())
    train = result["sections"].get("train", {})
    if train.get("runs"):
        lines += ["", f"training {train['model']}, batch {train['batch']} at {train['size']}x{train['size']}:"]
        for name, run in train["runs"].items():
            if run["status"] == "ok":
                extra = f", peak {run['peak_gib']} GiB" if "peak_gib" in run else ""
                lines.append(f"  {name:<32} {run['images_per_s']:>9.2f} images/s  ({run['step_ms']} ms/step, "
                             f"warm-up {run['warmup_s']} s{extra})")
            else:
                lines.append(f"  {name:<32} {run['status']}: {run.get('reason') or run.get('error')}")
        for name, ratio in train.get("bf16_over_float32", {}).items():
            lines.append(f"  {name}: x{ratio}")
    ev = result["sections"].get("eval", {})
    if ev.get("status") == "ok":
        lines += ["", f"nafft eval (TLC, train size {ev['tlc_train_size']}) on {ev['images']} {ev['size']} images, "
                      f"{ev['device']}: {ev['seconds_per_image']} s/image"]
    tiling = result["sections"].get("tiling", {})
    for label in ("default budget", "forced 2 GiB budget"):
        t = tiling.get(label)
        if isinstance(t, dict) and "peak_gib" in t:
            lines.append(f"tiling {tiling['image']}, {label} {t['budget_gib']} GiB: tile {t['tile']} ({t['tiles']} "
                         f"tiles), peak {t['peak_gib']} GiB (estimate {tiling['estimate_gib']} GiB), {t['seconds']} s")
    if check.skipped:
        lines += ["", "skipped:"] + [f"  {s}" for s in check.skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"), help="folder for gpu_check.json/.txt")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    parser.add_argument("--reserve", type=float, default=60.0, help="seconds kept for the sections after train")
    parser.add_argument("--model", default="nafnet-w32")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--compile", action="store_true", help="also compile on the CPU (minutes)")
    parser.add_argument("--eval-size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--eval-images", type=int, default=4)
    parser.add_argument("--patch-size", type=int, default=256, help="training crop size recorded for TLC")
    parser.add_argument("--ddp-steps", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="ignore CUDA: run the CPU parts only")
    args = parser.parse_args(argv)
    tune_malloc()
    check = Check(args)
    start = time.monotonic()
    for name in args.sections:
        check.run(name, lambda fn=SECTIONS[name]: fn(check))
    result = {"ran_on_gpu": check.cuda, "seconds": round(time.monotonic() - start, 1), "budget_s": args.budget,
              "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "out"},
              "sections": check.sections, "skipped": check.skipped}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    report = text_report(check, result)
    (args.out / "gpu_check.txt").write_text(report)
    print("\n" + report, end="")
    return 1 if any(s["status"] == "failed" for s in check.sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
