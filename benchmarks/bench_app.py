"""`nafft serve` under load, on loopback only: concurrent uploads of 512x384 photographs and clients that break off
mid-upload; every complete request must get the right image, the server must keep answering, its memory bounded.

    python benchmarks/bench_app.py [--requests 20] [--broken 3] [--waves 2] [--threads 2]

Starts `nafft serve --port 0` (the bundled default model, `--threads N`) as a subprocess and measures the time from
its start to the first answered request. Then, per wave, `--requests` clients upload at once through the HTTP API
the page uses (POST /api/jobs, poll GET /api/jobs/ID, GET .../result), each a different 512x384 crop of a
scikit-image photograph, while `--broken` clients send a third of an upload and close the connection. Each result is
compared with `nafft.deblur` of the same file in this process (same weights, same thread count): equal pixels or
the run fails. Latency is from the start of an upload to the end of its download (queue wait included: the server
deblurs one image at a time). The server's resident memory is sampled every 50 ms; its peak (VmHWM) and its size
after each wave show whether memory stays bounded. Prints a Markdown table; exits non-zero on any wrong image, lost
request or server that stops answering. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from bench_app_stack import cpu_name, stop  # noqa: E402 (benchmarks/ is on the path when run as a script)

SIZE = (384, 512)  # height, width
DEADLINE_S = 900


def photographs(count: int, folder: Path) -> list[Path]:
    """`count` different 512x384 PNG crops of scikit-image's colour photographs."""
    from skimage import data

    from nafft.data.io import write_image

    sources = [data.astronaut(), data.coffee(), data.rocket(), data.immunohistochemistry(), data.retina()[::2, ::2]]
    sources = [s for s in sources if s.shape[0] >= SIZE[0] and s.shape[1] >= SIZE[1]]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        y = int(rng.integers(0, source.shape[0] - SIZE[0] + 1))
        x = int(rng.integers(0, source.shape[1] - SIZE[1] + 1))
        crop = source[y : y + SIZE[0], x : x + SIZE[1], :3]
        paths.append(write_image(folder / f"photo{i:02d}.png", crop))
    return paths


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def http(url: str, data: bytes | None = None, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def deblur_request(base: str, path: Path, deadline: float) -> tuple[float, bytes]:
    """(seconds, result bytes) of one upload, its job and its download."""
    start = time.perf_counter()
    status, body = http(f"{base}/api/jobs?{urllib.parse.urlencode({'name': path.name})}", path.read_bytes())
    if status != 202:
        raise RuntimeError(f"{path.name}: upload answered {status}: {body[:200]!r}")
    job = json.loads(body)
    while job["state"] not in ("done", "error"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name}: not done before the deadline")
        time.sleep(0.1)
        status, body = http(f"{base}/api/jobs/{job['id']}")
        job = json.loads(body)
    if job["state"] != "done":
        raise RuntimeError(f"{path.name}: {job['message']}")
    status, result = http(f"{base}/api/jobs/{job['id']}/result")
    if status != 200:
        raise RuntimeError(f"{path.name}: download answered {status}")
    return time.perf_counter() - start, result


def broken_upload(port: int, path: Path) -> None:
    """Send the headers and a third of the file, then close the connection."""
    data = path.read_bytes()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(f"POST /api/jobs?name=broken-{path.name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode())
        conn.sendall(data[: len(data) // 3])
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--broken", type=int, default=3)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the server's and this process's torch threads")
    args = parser.parse_args()

    import torch
    from PIL import Image

    import nafft

    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="nafft-bench-app-"))
    paths = photographs(args.requests, folder)
    expected = {p.name: nafft.deblur(p, device="cpu") for p in paths}
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "nafft", "serve", "--port", "0", "--device", "cpu",
                               "--threads", str(args.threads)], stderr=subprocess.PIPE, text=True)
    failures: list[str] = []
    try:
        line = server.stderr.readline()
        base = line.split()[2].rstrip("/")
        port = int(base.rsplit(":", 1)[1])
        while http(base + "/", timeout=30)[0] != 200:
            time.sleep(0.02)
        first = time.perf_counter() - start
        idle = rss_kib(server.pid)
        peak_seen = idle
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak_seen
            while not sampling.wait(0.05):
                peak_seen = max(peak_seen, rss_kib(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies: list[float] = []
        after_waves: list[int] = []
        wall = []
        deadline = time.monotonic() + DEADLINE_S
        for _ in range(args.waves):
            results: dict[str, tuple[float, bytes] | Exception] = {}

            def run_one(path: Path, results=results) -> None:
                try:
                    results[path.name] = deblur_request(base, path, deadline)
                except Exception as exc:  # recorded as a failure of this request
                    results[path.name] = exc

            threads = [threading.Thread(target=run_one, args=(p,)) for p in paths]
            threads += [threading.Thread(target=broken_upload, args=(port, p)) for p in paths[: args.broken]]
            wave_start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic()))
            wall.append(time.perf_counter() - wave_start)
            for path in paths:
                outcome = results.get(path.name, RuntimeError(f"{path.name}: no answer"))
                if isinstance(outcome, Exception):
                    failures.append(str(outcome))
                    continue
                seconds, body = outcome
                latencies.append(seconds)
                pixels = np.asarray(Image.open(io.BytesIO(body)))
                if not np.array_equal(pixels, expected[path.name]):
                    failures.append(f"{path.name}: the result differs from nafft.deblur's")
            status, body = http(base + "/api/queue")
            if status != 200 or json.loads(body) != {"running": 0, "waiting": 0}:
                failures.append(f"after the wave the queue answered {status}: {body[:200]!r}")
            after_waves.append(rss_kib(server.pid))
        sampling.set()
        peak = max(rss_kib(server.pid, "VmHWM"), peak_seen)
    finally:
        stop(server)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else float("nan")
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch threads {args.threads}; bundled default model; "
          f"{args.waves} waves of {args.requests} concurrent 512x384 PNG uploads and {args.broken} broken-off "
          "uploads each\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| start to first answered request | {first:.1f} s |")
    print(f"| correct images | {len(latencies) - sum('differs' in f for f in failures)} of "
          f"{args.waves * args.requests} |")
    if ordered:
        print(f"| latency p50 / p95 / max | {statistics.median(ordered):.1f} / {p95:.1f} / {ordered[-1]:.1f} s |")
    print(f"| wave wall time | {' / '.join(f'{w:.1f}' for w in wall)} s |")
    print(f"| throughput | {len(latencies) / sum(wall):.2f} images/s |")
    print(f"| server RSS idle / after each wave | {idle / 1024:.0f} / "
          f"{' / '.join(f'{r / 1024:.0f}' for r in after_waves)} MiB |")
    print(f"| server peak RSS (VmHWM) | {peak / 1024:.0f} MiB |")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
