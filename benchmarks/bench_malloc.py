"""CPU inference speed under different memory allocators, measured side by side.

    .venv/bin/python benchmarks/bench_malloc.py [--preset nafnet-w32] [--sizes 256x256 720x1280] [--rounds 3]

Do not preload an allocator yourself: every configuration runs in its own child process (an allocator can only be
chosen at process start), and the rounds interleave the configurations so that a busy machine slows all alike:

    glibc            the system malloc, as `python` starts
    glibc+mallopt    glibc after `nafft.malloc_tuning.tune_malloc()` (what the `nafft` command does at start):
                     mallopt(M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=2 GiB), so that freed blocks up to 32 MiB
                     stay in the heap instead of going back to the kernel
    jemalloc         libjemalloc preloaded with its defaults (dirty pages purged after 10 s, muzzy ones at once)
    jemalloc-retain  libjemalloc preloaded with MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1: freed pages are
                     kept for reuse and never handed back

A forward pass of a NAFNet allocates and frees hundreds of activation-sized tensors; whenever the allocator returns
their pages to the kernel, the next allocation faults them in again (zeroed), which on a virtual machine costs about
as much as the convolutions. Each child prints its median forward time, page faults and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)
RETAIN = "dirty_decay_ms:-1,muzzy_decay_ms:-1"

CHILD = r"""
import json, resource, statistics, sys, time
import torch
preset, h, w, runs, mallopt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
if mallopt:
    from nafft.malloc_tuning import tune_malloc
    assert tune_malloc()
from nafft.models import build_model
model = build_model(preset).eval().to(memory_format=torch.channels_last)
x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(memory_format=torch.channels_last)
times = []
with torch.inference_mode():
    model(x)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": statistics.median(times), "faults_per_pass": (after.ru_minflt - before.ru_minflt) / runs,
                  "sys_per_pass": (after.ru_stime - before.ru_stime) / runs, "peak_rss_mib": after.ru_maxrss / 1024}))
"""


def find_jemalloc() -> str | None:
    return next((p for p in JEMALLOC_PATHS if Path(p).exists()), None)


def configurations() -> dict[str, dict[str, str]]:
    """Name -> environment changes (the key "_mallopt" is passed to the child, not the environment)."""
    configs = {"glibc": {}, "glibc+mallopt": {"_mallopt": "1"}}
    jemalloc = find_jemalloc()
    if jemalloc:
        configs["jemalloc"] = {"LD_PRELOAD": jemalloc}
        configs["jemalloc-retain"] = {"LD_PRELOAD": jemalloc, "MALLOC_CONF": RETAIN}
    else:
        print("libjemalloc.so.2 not found (Debian/Ubuntu: apt install libjemalloc2): jemalloc rows skipped")
    return configs


def run_child(preset: str, h: int, w: int, runs: int, changes: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env.update({k: v for k, v in changes.items() if not k.startswith("_")})
    args = [sys.executable, "-c", CHILD, preset, str(h), str(w), str(runs), changes.get("_mallopt", "0")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({changes}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nafnet-w32")
    parser.add_argument("--sizes", nargs="+", default=["256x256", "720x1280"], help="HxW")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one child per configuration)")
    parser.add_argument("--runs", type=int, default=3, help="timed forward passes per child, after one warm-up")
    args = parser.parse_args()
    if os.environ.get("LD_PRELOAD"):
        print(f"note: LD_PRELOAD={os.environ['LD_PRELOAD']} is not passed to the children")
    configs = configurations()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; {args.preset}, "
          f"channels_last, batch 1, median of {args.runs} passes per child, {args.rounds} interleaved rounds")
    for size in args.sizes:
        h, w = map(int, size.lower().split("x"))
        results: dict[str, list[dict]] = {name: [] for name in configs}
        for r in range(args.rounds):
            for name, changes in configs.items():
                results[name].append(run_child(args.preset, h, w, args.runs, changes))
            print(f"  {size}: round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        base = statistics.median(x["seconds"] for x in results["glibc"])
        print(f"\n## {size}")
        for name, rows in results.items():
            sec = statistics.median(x["seconds"] for x in rows)
            faults = statistics.median(x["faults_per_pass"] for x in rows)
            sys_s = statistics.median(x["sys_per_pass"] for x in rows)
            rss = max(x["peak_rss_mib"] for x in rows)
            print(f"  {name:16s} {sec * 1000:9.0f} ms  x{sec / base:.3f} of glibc   {faults:10,.0f} page faults/pass  "
                  f"{sys_s:6.2f} s kernel/pass  peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
