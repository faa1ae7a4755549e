"""Inference speed and memory, measured side by side (run with jemalloc preloaded on CPU):

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 .venv/bin/python benchmarks/bench_inference.py

Sections:
  tiling   tiled (512 tiles, default overlap) against whole-image inference of one 1024x1024 photograph with
           nafnet-small, TLC on and off, runs interleaved: median time ratio, and PSNR between the two outputs
           (a seam measure: the higher, the less tiling changes the result; identical outputs would be inf).
  onnx     onnxruntime against PyTorch eager (its default path: channels_last on the CPU) for nafnet-w32 at
           720x1280 with TLC for 256 crops (as `nafft export` exports; `--onnx-global` for global pooling), with the
           `nafft` command's malloc settings, runs interleaved: median latencies, their ratio and max |difference|.
  memory   peak RSS of `nafft deblur` on a 3840x2160 PNG with nafnet-small and --tile 512, measured in a child
           process (resource.getrusage).
  activations  the memory one whole-image forward adds at 512 and 1024 px, in units of H x W x width x 4 bytes:
           what `Predictor`'s automatic tiling budgets with (nafft.inference.predict.ACTIVATION_FACTOR).
  crossover  seconds per megapixel of whole-image and tiled prediction (tiles of 256-768 px) at growing square
           sizes, in this process with the `nafft` command's malloc settings: where tiling starts to pay on the CPU
           (what `Predictor`'s automatic tiling uses: nafft.inference.predict.whole_slowdown, FAST_TILE_BYTES).
  speed    `nafft deblur` of 1, 4 and 12 megapixel PNGs (4:3) whole (`--tile 0`), tiled (`--tile 512`) and with the
           automatic choice, each in a fresh process: wall time and peak RSS (the whole-or-tiled table of docs/benchmarks.md).

Models have random weights (seeded; zero-initialised layer scales made non-zero so every block acts) unless
`--checkpoint` gives a nafnet-small-sized checkpoint for the tiling and memory sections.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nafft.data.io import write_image  # noqa: E402
from nafft.inference import OpenedModel, Predictor, open_model  # noqa: E402
from nafft.metrics import psnr_from_mse  # noqa: E402
from nafft.models import build_model, disable_tlc, enable_tlc, save_model  # noqa: E402

SECTIONS = ("tiling", "onnx", "memory", "activations", "crossover", "speed")
ROOT = Path(__file__).resolve().parents[1]


def jemalloc_loaded() -> bool:
    try:
        return "jemalloc" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def random_model(name: str, seed: int = 0, std: float = 0.02):
    """A preset with seeded random weights, beta/gamma non-zero so that every block changes its input."""
    torch.manual_seed(seed)
    model = build_model(name).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.1)
            elif pname.endswith("weight") and p.ndim > 1:
                p.mul_(1.0 + std)
    return model


def photo(height: int, width: int) -> np.ndarray:
    """A natural photograph (scikit-image's sample data) resized to (H, W), float32 RGB; noise when absent."""
    try:
        from skimage import data
        from skimage.transform import resize

        img = data.astronaut().astype(np.float32) / 255.0
        return resize(img, (height, width), order=1, anti_aliasing=True).astype(np.float32)
    except ImportError:
        rng = np.random.default_rng(0)
        coarse = torch.from_numpy(rng.random((1, 3, height // 16, width // 16), dtype=np.float32))
        return (
            torch.nn.functional.interpolate(coarse, (height, width), mode="bicubic")[0]
            .permute(1, 2, 0)
            .numpy()
        )


def psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two float predictions before 8-bit rounding (tiling differs from a whole pass far below 1/255)."""
    return psnr_from_mse(float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()), data_range=1.0)


def interleaved(fns: dict, runs: int) -> dict[str, float]:
    """Median seconds per function, running them alternately `runs` times (after one warm-up each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_tiling(args) -> dict:
    if args.checkpoint:
        opened = open_model(args.checkpoint, device="cpu")
        model, train_size = opened.network, opened.train_size
    else:
        model, train_size = random_model("nafnet-small"), 256
    x = torch.from_numpy(photo(1024, 1024)).permute(2, 0, 1).contiguous()
    out = {"tlc_train_size": train_size}
    for tlc in (True, False):
        (enable_tlc(model, train_size) if tlc else disable_tlc(model))
        opened = OpenedModel.from_network(model, device="cpu")  # the network itself, TLC as just set
        whole = Predictor(opened, tile=0)
        tiled = Predictor(opened, tile=512)
        t = interleaved({"whole": lambda p=whole: p(x), "tiled": lambda p=tiled: p(x)}, args.runs)
        seam = psnr_between(tiled(x), whole(x))
        key = "tlc" if tlc else "global_pooling"
        out[key] = {
            "whole_s": t["whole"],
            "tiled_s": t["tiled"],
            "tiled_over_whole": t["tiled"] / t["whole"],
            "tiles": tiled.last_tiles,
            "overlap": tiled.overlap_for(512),
            "psnr_tiled_vs_whole_db": seam,
        }
        print(
            f"tiling 1024x1024 {key} (train size {train_size}): whole {t['whole']:.2f} s, tiled (512, overlap "
            f"{tiled.overlap_for(512)}, {tiled.last_tiles} tiles) {t['tiled']:.2f} s, ratio {t['tiled'] / t['whole']:.2f}; "
            f"PSNR(tiled, whole) {seam:.2f} dB",
            flush=True,
        )
    return out


def bench_onnx(args) -> dict:
    import onnxruntime as ort

    from nafft.inference.export import export_onnx
    from nafft.malloc_tuning import tune_malloc

    tune_malloc()  # what the nafft command does at start
    model = random_model("nafnet-w32")
    if not args.onnx_global:
        enable_tlc(model, 256)
    pooling = "global pooling" if args.onnx_global else "TLC, train size 256"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w32.onnx"
        start = time.perf_counter()
        result = export_onnx(OpenedModel.from_network(model, device="cpu"), path)
        export_s = time.perf_counter() - start
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = torch.rand(1, 3, 720, 1280, generator=torch.Generator().manual_seed(0))
        xn = x.numpy()

        def eager():
            with torch.inference_mode():
                return model(x)

        t = interleaved(
            {"pytorch": eager, "onnxruntime": lambda: session.run(None, {"input": xn})}, args.runs
        )
        diff = float(np.abs(session.run(None, {"input": xn})[0] - eager().numpy()).max())
    print(
        f"onnx nafnet-w32 720x1280 ({pooling}): PyTorch {t['pytorch']:.2f} s, onnxruntime {t['onnxruntime']:.2f} s, "
        f"ratio ort/pytorch {t['onnxruntime'] / t['pytorch']:.2f}, max |diff| {diff:.1e} "
        f"(export + check {export_s:.0f} s, {result.size_bytes / 1e6:.0f} MB)",
        flush=True,
    )
    return {
        "pooling": pooling,
        "pytorch_s": t["pytorch"],
        "onnxruntime_s": t["onnxruntime"],
        "ort_over_pytorch": t["onnxruntime"] / t["pytorch"],
        "max_abs_diff": diff,
        "export_s": export_s,
    }


# Linux carries a process's pre-exec resident size into its ru_maxrss, so a child forked straight from this (large)
# process would report at least our own size. A small Python process in between forks the measured command and
# reports that grandchild's peak alone.
_MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter(); proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'maxrss_kib': usage.ru_maxrss, 'code': proc.returncode, 'cpu_s': usage.ru_utime + usage.ru_stime,"
    " 'seconds': time.perf_counter() - start, 'stderr': proc.stderr[-2000:],"
    " 'tile_lines': [l for l in proc.stderr.splitlines() if 'tiles of' in l][-2:]}))\n"
)


def _child_report(cmd: list[str], env: dict) -> dict:
    """Peak RSS (KiB), wall and CPU seconds, exit code and stderr tail of a command run in a fresh process tree."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], env=env, capture_output=True, text=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["code"]:
        print(report["stderr"], file=sys.stderr)
    return report


def _child_peak_rss(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS MiB, seconds, exit code) of a command run in a fresh process tree."""
    report = _child_report(cmd, env)
    return report["maxrss_kib"] / 1024, report["seconds"], report["code"]


def bench_memory(args) -> dict:
    env = dict(os.environ)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = (
            Path(args.checkpoint)
            if args.checkpoint
            else save_model(random_model("nafnet-small"), tmp / "small.safetensors")
        )
        write_image(tmp / "in" / "uhd.png", photo(2160, 3840))
        cmd = [
            sys.executable,
            "-m",
            "nafft",
            "deblur",
            str(tmp / "in" / "uhd.png"),
            "-o",
            str(tmp / "out"),
            "--checkpoint",
            str(ckpt),
            "--tile",
            "512",
            "--device",
            "cpu",
        ]
        peak, seconds, code = _child_peak_rss(cmd, env)
        out["deblur_3840x2160_tile512"] = {"peak_rss_mib": peak, "seconds": seconds, "exit_code": code}
        print(
            f"memory: nafft deblur 3840x2160 nafnet-small --tile 512: peak RSS {peak:.0f} MiB, {seconds:.0f} s "
            f"(exit {code})",
            flush=True,
        )
    return out


def bench_activations(args) -> dict:
    env = dict(os.environ)
    out: dict = {}
    # Current RSS sampled every 2 ms during one forward, minus the RSS just before it (ru_maxrss would include
    # the import-time peak).
    probe = (
        "import os, sys, threading, time, torch\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from nafft.models import build_model\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "m = build_model(sys.argv[1]).eval(); s = int(sys.argv[2]); peak = [0]; done = []\n"
        "def poll():\n"
        "    while not done: peak[0] = max(peak[0], rss()); time.sleep(0.002)\n"
        "with torch.inference_mode():\n"
        "    m(torch.rand(1, 3, 64, 64)); x = torch.rand(1, 3, s, s); r0 = rss()\n"
        "    t = threading.Thread(target=poll); t.start(); m(x); done.append(1); t.join()\n"
        "print((peak[0] - r0) / (s * s * m.config.width * 4))\n"
    )
    for name in ("nafnet-small", "nafnet-w32"):
        for size in (512, 1024):
            res = subprocess.run(
                [sys.executable, "-c", probe, name, str(size), str(ROOT / "src")],
                env=env,
                capture_output=True,
                text=True,
            )
            factor = float(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else float("nan")
            out[f"activation_factor_{name}_{size}"] = factor
            print(
                f"activations: {name} {size}x{size} forward: {factor:.1f} x H x W x width x 4 bytes",
                flush=True,
            )
    return out


def bench_crossover(args) -> dict:
    from nafft.malloc_tuning import tune_malloc

    tune_malloc()  # what the nafft command does at start
    model = random_model(args.model)
    enable_tlc(model, 256)
    opened = OpenedModel.from_network(model, device="cpu")
    Predictor(opened, tile=0)(torch.rand(3, 256, 256))  # first-call set-up out of the way
    out: dict = {}
    for side in args.sides:
        x = torch.from_numpy(photo(side, side)).permute(2, 0, 1).contiguous()
        fns = {"whole": Predictor(opened, tile=0)}
        fns.update({f"tile {t}": Predictor(opened, tile=t) for t in args.tiles if t < side})
        times = {k: [] for k in fns}
        cpu = {k: [] for k in fns}
        for _ in range(args.runs):
            for key, predictor in fns.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                predictor(x)
                times[key].append(time.perf_counter() - start)
                cpu[key].append(time.process_time() - start_cpu)
        mp = side * side / 1e6
        row = {k: statistics.median(v) / mp for k, v in times.items()}
        out[str(side)] = {
            "wall_s_per_mp": row,
            "cpu_s_per_mp": {k: statistics.median(v) / mp for k, v in cpu.items()},
        }
        print(
            f"crossover {args.model} {side}x{side}: s/MP wall (CPU) "
            + ", ".join(f"{k} {v:.2f} ({out[str(side)]['cpu_s_per_mp'][k]:.2f})" for k, v in row.items()),
            flush=True,
        )
    return out


def bench_speed(args) -> dict:
    env = dict(os.environ)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = (
            Path(args.checkpoint)
            if args.checkpoint
            else save_model(random_model(args.model), tmp / "m.safetensors")
        )
        for mp in args.megapixels:
            width = int(round(math.sqrt(mp * 1e6 * 4 / 3) / 16)) * 16
            height = width * 3 // 4
            image = tmp / "in" / f"{mp:g}mp.png"
            write_image(image, photo(height, width))
            for label, tile in (
                ("whole", ["--tile", "0"]),
                ("tiled 512", ["--tile", "512"]),
                ("automatic", []),
            ):
                cmd = [
                    sys.executable,
                    "-m",
                    "nafft",
                    "-v",
                    "deblur",
                    str(image),
                    "-o",
                    str(tmp / "out"),
                    "--checkpoint",
                    str(ckpt),
                    "--device",
                    "cpu",
                    *tile,
                ]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                report = _child_report(cmd, env)
                tiles = re.findall(r"tiles of \(?(\d+)", " ".join(report["tile_lines"]))
                row = {
                    "size": [width, height],
                    "seconds": report["seconds"],
                    "cpu_seconds": report["cpu_s"],
                    "peak_rss_mib": report["maxrss_kib"] / 1024,
                    "tile": int(tiles[-1]) if tiles else None,
                    "exit_code": report["code"],
                }
                out[f"{mp:g}mp {label}"] = row
                print(
                    f"speed {width}x{height} ({mp:g} MP) {label}: {row['seconds']:.1f} s wall, "
                    f"{row['cpu_seconds']:.1f} s CPU, peak RSS {row['peak_rss_mib']:.0f} MiB, "
                    f"tile {row['tile'] or 'none'} (exit {row['exit_code']})",
                    flush=True,
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant (median)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="nafnet-small-sized weights for tiling/memory")
    parser.add_argument("--onnx-global", action="store_true", help="onnx: export global pooling instead of TLC")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--model", default="nafnet-small", help="preset for crossover/speed (random weights)")
    parser.add_argument(
        "--sides",
        nargs="+",
        type=int,
        default=[512, 768, 1024, 1536, 2048],
        help="square image sides for crossover",
    )
    parser.add_argument(
        "--tiles", nargs="+", type=int, default=[256, 384, 512, 768], help="tile sides for crossover"
    )
    parser.add_argument(
        "--megapixels", nargs="+", type=float, default=[1, 4, 12], help="image sizes for speed"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, jemalloc "
        f"{'loaded' if jemalloc_loaded() else 'NOT loaded'}",
        flush=True,
    )
    results = {"jemalloc": jemalloc_loaded(), "threads": torch.get_num_threads()}
    for section in args.sections:
        results[section] = globals()[f"bench_{section}"](args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
