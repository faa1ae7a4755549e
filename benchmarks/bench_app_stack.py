"""Which web stack for `nafft serve`: install size and time to the first answered request, Gradio against Starlette
on uvicorn (what nafft serve uses), each in a scratch virtual environment.

    python benchmarks/bench_app_stack.py [--runs 5] [--keep DIR]

For each stack: a fresh venv (the Python running this script, pip upgraded first so both start equal), `pip install`
of the stack at the versions below with its dependencies; the size is what the install added to site-packages (and
the number of distributions it brought). Then a minimal app of each (one page with an image input: Gradio's
`gr.Interface(image -> image)`, a Starlette route returning a small HTML page) is started `--runs` times, and the time
from process start to the first HTTP 200 on "/" is measured on 127.0.0.1 (median and range). Neither app loads a
model: the difference is the stack's alone. Needs the package index (pip); nothing else leaves the machine (Gradio's
analytics are switched off).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

STACKS = {
    "gradio": ["gradio==6.31.0"],
    "starlette+uvicorn": ["starlette==1.10.0", "uvicorn==0.55.0"],
}

APPS = {
    "gradio": """
        import sys
        import gradio as gr

        demo = gr.Interface(fn=lambda image: image, inputs=gr.Image(), outputs=gr.Image())
        demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), show_error=True)
    """,
    "starlette+uvicorn": """
        import sys
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse
        from starlette.routing import Route

        PAGE = "<!doctype html><title>deblur</title><input type=file accept=image/*><img id=result>"

        async def index(request):
            return HTMLResponse(PAGE)

        uvicorn.run(Starlette(routes=[Route("/", index)]), host="127.0.0.1", port=int(sys.argv[1]),
                    log_level="warning")
    """,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def install(stack: str, root: Path) -> tuple[Path, int, int, float]:
    """(venv, bytes added, distributions added, seconds) of installing `stack` into a fresh venv."""
    venv = root / stack.replace("+", "-")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    packages = site_packages(venv)
    before_size = tree_size(packages)
    before = {p.name for p in packages.glob("*.dist-info")}
    start = time.perf_counter()
    subprocess.run([*pip, "install", *STACKS[stack]], check=True)
    seconds = time.perf_counter() - start
    added = {p.name for p in packages.glob("*.dist-info")} - before
    return venv, tree_size(packages) - before_size, len(added), seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_response(venv: Path, script: Path, timeout: float = 120.0) -> float:
    """Seconds from starting the app to its first HTTP 200 on "/"."""
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GRADIO_SERVER_NAME="127.0.0.1")
    start = time.perf_counter()
    process = subprocess.Popen([str(venv / "bin" / "python"), str(script), str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{script.name} exited with {process.returncode} before answering")
            time.sleep(0.02)
        raise RuntimeError(f"{script.name}: no answer after {timeout} s")
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """Terminate a server process (SIGTERM: a graceful shutdown), killing it if it does not end in `timeout` s."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="starts per stack (default 5)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the venvs in this folder (default: removed)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="nafft-stack-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {args.runs} starts per stack\n")
    print("| stack | versions | install size | distributions | install time | first response (median, range) |")
    print("|---|---|---:|---:|---:|---:|")
    try:
        for stack in STACKS:
            venv, size, count, seconds = install(stack, root)
            script = root / f"{venv.name}_app.py"
            script.write_text(textwrap.dedent(APPS[stack]))
            first_response(venv, script)  # a first start warms the disk cache (compiled .pyc files written)
            times = [first_response(venv, script) for _ in range(args.runs)]
            print(f"| {stack} | {', '.join(STACKS[stack])} | {size / 2**20:.1f} MiB | {count} | {seconds:.0f} s | "
                  f"{statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f}) |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
