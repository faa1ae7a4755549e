"""Video deblurring speed: frames per second of `nafft deblur clip.mp4 -o out.mp4` at 1280x720.

    .venv/bin/python benchmarks/bench_video.py                 # the bundled default model, batches of 1 and 4
    .venv/bin/python benchmarks/bench_video.py --device cuda   # on a GPU

A 1280x720, 24 fps H.264 clip with an AAC track is made first (a slow pan over scikit-image's coffee photograph,
so that the encoder sees camera-like content), then restored through the same library path as the command
(`open_model` of the default model with TLC, a `Predictor` with the automatic tiling, `deblur_video`), once per batch
size. Printed per batch size: frames, wall seconds, frames per second, and the share of the time spent in the model
(the rest is decoding, colour conversion and H.264 encoding). A pass with an identity network measures that rest
alone. The load average is printed before and after: on a shared machine the figures are only as good as it is quiet.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_app_stack import cpu_name  # noqa: E402 (benchmarks/ is on the path when run as a script)

from nafft.inference import OpenedModel, Predictor, open_model  # noqa: E402
from nafft.inference.video import deblur_video  # noqa: E402


def make_clip(path: Path, frames: int, width: int = 1280, height: int = 720, fps: int = 24) -> Path:
    """A pan over a photograph, H.264 (CRF 18) with a 440 Hz stereo AAC track of the same length."""
    import av
    from PIL import Image
    from skimage import data

    photo = np.asarray(Image.fromarray(data.coffee()).resize((width + 4 * frames, height + 2 * frames)))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for i in range(frames):
            crop = np.ascontiguousarray(photo[2 * i : 2 * i + height, 4 * i : 4 * i + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        total = 48000 * frames // fps
        wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / 48000)).astype(np.float32)
        for pos in range(0, total, 1024):
            chunk = wave[pos : pos + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, pos
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
    return path


def measure(clip: Path, out: Path, predictor: Predictor, batch: int) -> tuple[int, float, float]:
    """(frames, wall seconds, model seconds) of one `deblur_video` run."""
    start = time.perf_counter()
    result = deblur_video(clip, out, predictor, batch=batch)
    wall = time.perf_counter() - start
    if result.error:
        raise SystemExit(result.error)
    return result.frames, wall, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames in the clip (default 12: half a second)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="batch sizes to measure")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    opened = open_model(None, device=args.device)
    predictor = Predictor(opened)
    gpu = torch.cuda.get_device_name(opened.device) if opened.device.type == "cuda" else None
    print(f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, device {opened.device}{f' ({gpu})' if gpu else ''}")
    print(opened.describe())
    print("load average (1, 5, 15 min) at the start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.frames)
        identity = Predictor(OpenedModel.from_network(torch.nn.Identity(), device="cpu"), tile=0)
        frames, wall, _ = measure(clip, Path(tmp) / "identity.mp4", identity, 4)
        print(f"decode + convert + encode alone (identity network): {frames / wall:.1f} frames/s")
        print(f"{'batch':>5} {'frames':>6} {'seconds':>8} {'frames/s':>9} {'in model':>9}")
        for batch in args.batches:
            frames, wall, model = measure(clip, Path(tmp) / f"out{batch}.mp4", predictor, batch)
            print(f"{batch:>5} {frames:>6} {wall:>8.1f} {frames / wall:>9.3f} {model / wall:>8.0%}")
    print("load average at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
