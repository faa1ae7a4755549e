"""Deblur video files frame by frame, through PyAV (FFmpeg): the optional extra `nafft[video]`.

Every frame of the first video stream is decoded to RGB, restored by a `Predictor` (in batches on CUDA), and encoded
again; each output frame keeps its input frame's timestamp and duration (the output stream uses the input's time
base), so the output has the input's size, frame rate, frame count and duration, variable frame rates included.
Audio and subtitle streams are copied packet for packet (not re-encoded), with their language tags, and so is the
container's metadata (title, creation time, location...). A clip recorded with a rotation flag (phones) is turned
upright, as EXIF-oriented photographs are, and written without one.

Codec and quality, by output suffix: H.264 (libx264, CRF 18, preset medium: visually close to lossless, and played
everywhere) for .mp4, .m4v, .mov, .mkv and .avi; VP9 (libvpx-vp9, CRF 20, constant quality) for .webm. Chroma is
4:2:0 like most camera video; 4:4:4 when the input is 4:4:4 or a side is odd (4:2:0 H.264 needs even sides). Inputs
with more than 8 bits per sample (10-bit HEVC from phones) are processed in 16 bits and written as 10-bit H.264
(WebM: 8-bit). The colour matrix, range, primaries and transfer of the input are used for both conversions and
tagged on the output.

`--start`/`--end` (seconds) restore a part: the output then starts at time 0, and the copied streams are cut at the
packets that start in the range. The output is written to a hidden temporary file and renamed when complete, so an
interrupted run leaves no partial video under the output's name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from nafft.atomic_files import commit_temp, new_temp
from nafft.data.io import quantize, to_float
from nafft.errors import UserError
from nafft.inference.predict import Predictor

log = logging.getLogger(__name__)

# Suffixes of the videos nafft reads, and the FFmpeg container each writable suffix is written as.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg",
                  ".wmv", ".flv", ".3gp")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# A video read in a container nafft does not write is written as Matroska, which holds any audio and subtitle codec.
FALLBACK_SUFFIX = ".mkv"
H264_CRF = 18
VP9_CRF = 20
# Frames per model call. On the CPU one at a time measured faster (1280x720, bundled model, 1 thread: 0.30-0.32
# frames/s at batch 1 against 0.20 at batch 4, runs interleaved; benchmarks/bench_video.py), likely because a batch
# multiplies the buffers of the small CPU tiles (nafft.inference.predict.speed_tile) past the size that runs fast.
# On CUDA a batch keeps the device busy (not measured here: no GPU was available).
DEFAULT_BATCH = {"cpu": 1, "cuda": 4}


class VideoError(UserError):
    """A video that cannot be read, restored or written."""


@dataclass
class VideoResult:
    """What became of one video.

    Attributes:
        source: the input file.
        target: the output file.
        frames: frames restored and written.
        size: (height, width) of the written frames.
        fps: the video stream's average frame rate.
        codec: the video codec written, with its pixel format.
        copied: the streams copied, as "audio aac (eng)" strings.
        seconds: time spent in the model.
        error: None on success, else one line naming the file.
    """

    source: Path
    target: Path
    frames: int = 0
    size: tuple[int, int] | None = None
    fps: Fraction | None = None
    codec: str = ""
    copied: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV: pip install 'nafft[video]' (or pip install av)") from None
    return av


def is_video_file(path: str | Path) -> bool:
    """True for a visible file name with a video suffix nafft reads (case-insensitive)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES


def video_output_name(source: Path) -> str:
    """The output file name of a video written into a folder: its own name, or `.mkv` for a container nafft
    does not write."""
    suffix = source.suffix.lower()
    return source.name if suffix in CONTAINERS else source.stem + FALLBACK_SUFFIX


def check_video_target(target: Path) -> None:
    """Raise VideoError when nafft cannot write a video to `target`'s suffix (before any work)."""
    if target.suffix.lower() not in CONTAINERS:
        raise VideoError(
            f"{target}: nafft writes video as {', '.join(CONTAINERS)}; '{target.suffix}' is not one of them"
        )


def plan_video_jobs(sources: list[Path], out: str | Path) -> list[tuple[Path, Path]]:
    """(video, output) pairs: `out` itself when it names one video file (a video suffix), else files in the folder
    `out` named by `video_output_name`.

    Raises:
        VideoError: `out` names one file but several videos are given, an output would be one of the inputs, or two
            videos would be written to the same output.
    """
    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES and not out.is_dir():
        check_video_target(out)
        if len(sources) > 1:
            raise VideoError(f"-o {out} names one video file, but {len(sources)} videos are given; give a folder")
        pairs = [(sources[0], out)] if sources else []
    else:
        pairs = [(source, out / video_output_name(source)) for source in sources]
    inputs = {source.resolve() for source in sources}
    taken: dict[Path, Path] = {}
    for source, target in pairs:
        if target.resolve() in inputs:
            raise VideoError(f"{target}: refusing to write over the input {source}; choose another -o")
        if target.resolve() in taken:
            raise VideoError(f"{target}: both {taken[target.resolve()]} and {source} would be written there")
        taken[target.resolve()] = source
    return pairs


def count_frames(path: str | Path, start: float | None = None, end: float | None = None) -> int | None:
    """The number of frames expected between `start` and `end` seconds (the whole clip by default), from the
    container's frame count or duration and frame rate; None when it does not say."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            duration = (float(stream.duration * stream.time_base) if stream.duration
                        else container.duration / 1e6 if container.duration else None)
            if start is None and end is None and stream.frames:
                return int(stream.frames)
    except Exception:
        return None
    if duration is None or not rate:
        return None
    span = min(duration, end if end is not None else duration) - (start or 0.0)
    return max(0, round(span * float(rate)))


def _depth(av, pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for formats PyAV does not describe)."""
    try:
        return max(component.bits for component in av.VideoFormat(pix_fmt).components)
    except Exception:
        return 8


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a frame by its display rotation (degrees counterclockwise, FFmpeg's display matrix) so that it shows
    upright without the flag."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def _encoder_settings(suffix: str, height: int, width: int, in_pix_fmt: str, deep: bool) -> tuple[str, str, dict]:
    """(codec, pixel format, codec options) for an output of this suffix and frame size."""
    full_chroma = "444" in in_pix_fmt or height % 2 or width % 2
    chroma = "yuv444p" if full_chroma else "yuv420p"
    if suffix == ".webm":
        return "libvpx-vp9", chroma, {"crf": str(VP9_CRF), "b": "0", "row-mt": "1"}
    return "libx264", chroma + ("10le" if deep else ""), {"crf": str(H264_CRF), "preset": "medium"}


def _in_range(t: float, start: float | None, end: float | None) -> bool:
    return (start is None or t >= start - 1e-6) and (end is None or t < end - 1e-6)


def deblur_video(
    source: str | Path,
    target: str | Path,
    predictor: Predictor,
    *,
    start: float | None = None,
    end: float | None = None,
    batch: int | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Restore every frame of a video and write it with its audio and subtitles (see the module docstring).

    Args:
        source: the video file.
        target: the output file; its suffix sets the container and codec. Written atomically.
        predictor: runs the model (batches of frames).
        start: first second to restore (None: the beginning).
        end: second to stop at, exclusive (None: the end).
        batch: frames per model call; None: `DEFAULT_BATCH` for the predictor's device.
        on_frames: called with the number of frames just written (progress).

    Returns:
        A VideoResult; `error` holds one line naming the file when the video could not be read or written (nothing
        is left under `target` then).
    """
    source, target = Path(source), Path(target)
    result = VideoResult(source, target)
    if start is not None and end is not None and end <= start:
        result.error = f"{source}: --end {end:g} is not after --start {start:g}"
        return result
    av = _av()
    try:
        check_video_target(target)
        inp = av.open(str(source))
    except VideoError as exc:
        result.error = str(exc)
        return result
    except (av.error.FFmpegError, OSError) as exc:
        result.error = f"{source}: not a video FFmpeg can read ({exc})"
        return result
    tmp = None
    try:
        with inp:
            if not inp.streams.video:
                raise VideoError(f"{source}: no video stream")
            tmp = new_temp(target)
            with av.open(str(tmp), "w", format=CONTAINERS[target.suffix.lower()]) as out:
                batch = batch or DEFAULT_BATCH.get(predictor.device.type, 1)
                _transcode(av, inp, out, predictor, result, start, end, max(1, batch), on_frames)
        if result.frames == 0:
            raise VideoError(f"{source}: no frames between --start and --end" if start is not None or end is not None
                             else f"{source}: no video frames could be decoded")
        commit_temp(tmp, target)
    except VideoError as exc:
        result.error = str(exc)
    except av.error.FFmpegError as exc:
        result.error = f"{source}: {exc}"
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return result


# Under --strength auto the guard judges every frame; the strength applied moves towards its judgement by this share
# per frame (an exponential moving average over about 10 frames), so that a clip does not flicker.
AUTO_SMOOTHING = 0.1


def _transcode(av, inp, out, predictor: Predictor, result: VideoResult, start: float | None, end: float | None,
               batch: int, on_frames) -> None:
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    deep = _depth(av, vin.codec_context.pix_fmt or "yuv420p") > 8
    rgb_format = "rgb48le" if deep else "rgb24"
    out.metadata.update(inp.metadata)
    result.fps = vin.average_rate or vin.guessed_rate
    first = _first_frame(av, result.source)
    height, width = vin.codec_context.height, vin.codec_context.width
    if round((first.rotation or 0) / 90) % 2:
        height, width = width, height
    vout = _open_video_stream(av, out, vin, first, (height, width), deep, result)  # stream 0, as players expect
    copies = {}
    for stream in inp.streams:
        if stream.type in ("audio", "subtitle"):
            try:
                copied = out.add_stream_from_template(stream)
            except (ValueError, av.error.FFmpegError) as exc:
                raise VideoError(
                    f"{result.source}: cannot copy {stream.type} stream {stream.index} ({stream.codec_context.name}) "
                    f"into {result.target.suffix}: {exc}; write to .mkv instead"
                ) from None
            copied.metadata.update(stream.metadata)
            copies[stream.index] = copied
            language = stream.metadata.get("language")
            result.copied.append(f"{stream.type} {stream.codec_context.name}" + (f" ({language})" if language else ""))
        elif stream is not vin:  # another video (cover art), data (timecode, telemetry), attachments
            log.info("%s: stream %d (%s) not copied", result.source, stream.index, stream.type)
    if start:
        inp.seek(int(start / vin.time_base) + (vin.start_time or 0), stream=vin, backward=True, any_frame=False)
    frames: list = []
    finished = {vin.index: False, **{index: False for index in copies}}
    predictor.auto_smoothing, predictor.smoothed_strength = AUTO_SMOOTHING, None  # used by --strength auto only

    def flush() -> None:
        if not frames:
            return
        arrays = [_upright(f.to_ndarray(format=rgb_format, src_color_range=f.color_range), f.rotation or 0)
                  for f in frames]
        x = torch.from_numpy(to_float(np.stack(arrays).transpose(0, 3, 1, 2)))
        began = time.perf_counter()
        pred = predictor(x)
        result.seconds += time.perf_counter() - began
        pixels = quantize(pred.numpy().transpose(0, 2, 3, 1), 16 if deep else 8, in_place=True)
        for frame, rgb in zip(frames, pixels):
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=rgb_format).reformat(
                format=vout.codec_context.pix_fmt, dst_colorspace=frame.colorspace, dst_color_range=frame.color_range)
            new.pts = frame.pts - offsets[vin.index]
            new.time_base = vin.time_base
            new.duration = frame.duration
            for packet in vout.encode(new):
                out.mux(packet)
        result.frames += len(frames)
        if on_frames is not None:
            on_frames(len(frames))
        frames.clear()

    # Timestamps shift so that a part starts at 0; a whole clip keeps its own.
    offsets = {index: 0 for index in finished}
    if start:
        for index in finished:
            stream = inp.streams[index]
            offsets[index] = int(start / stream.time_base) + (stream.start_time or 0)
    for packet in inp.demux(vin, *[inp.streams[i] for i in copies]):
        index = packet.stream.index
        if packet.stream is vin:
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                t = float((frame.pts - (vin.start_time or 0)) * vin.time_base)
                if not _in_range(t, start, end):
                    finished[index] = end is not None and t >= end - 1e-6
                    continue
                frames.append(frame)
                if len(frames) >= batch:
                    flush()
        elif packet.dts is not None and packet.pts is not None:
            stream = packet.stream
            t = float((packet.pts - (stream.start_time or 0)) * stream.time_base)
            if not _in_range(t, start, end):
                finished[index] = end is not None and t >= end - 1e-6
                continue
            packet.pts -= offsets[index]
            packet.dts -= offsets[index]
            packet.stream = copies[index]
            out.mux(packet)
        if end is not None and all(finished.values()):
            break
    flush()
    for packet in vout.encode():
        out.mux(packet)


def _first_frame(av, source: Path):
    """The first decodable frame of the first video stream (its rotation and colour tags set up the output before
    any packet is written), read through a second handle so that the main one stays at its position."""
    with av.open(str(source)) as probe:
        for frame in probe.decode(video=0):
            return frame
    raise VideoError(f"{source}: no video frames could be decoded")


def _open_video_stream(av, out, vin, first, size: tuple[int, int], deep: bool, result: VideoResult):
    """The output video stream, set up from the input stream and its first frame (the frame's colour tags)."""
    height, width = size
    codec, pix_fmt, options = _encoder_settings(result.target.suffix.lower(), height, width,
                                                vin.codec_context.pix_fmt or "yuv420p", deep)
    stream = out.add_stream(codec, rate=result.fps, options=options)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.time_base = vin.time_base
    ctx = stream.codec_context
    ctx.time_base = vin.time_base  # frames keep their own timestamps: variable frame rates stay as they were
    ctx.color_range = first.color_range
    ctx.colorspace = first.colorspace
    ctx.color_primaries = first.color_primaries
    ctx.color_trc = first.color_trc
    stream.metadata.update({k: v for k, v in vin.metadata.items() if k in ("language", "title")})
    result.size = size
    result.codec = f"{codec} {pix_fmt}"
    return stream
