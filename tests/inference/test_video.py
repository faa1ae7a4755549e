"""Video: every frame restored and written with the input's size, rate, count and duration; audio and subtitles copied;
a part with --start/--end; odd sizes; atomic output. Clips are made here with PyAV."""

import struct
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from nafft.inference.opened_model import OpenedModel
from nafft.inference.predict import Predictor
from nafft.inference.video import _upright, count_frames, deblur_video, is_video_file, video_output_name

av = pytest.importorskip("av")

FPS = 24
FRAMES = 12
RATE = 48000


class Darken(nn.Module):
    """Halves every pixel: a model whose output is easy to check in the decoded video."""

    def forward(self, x):
        return x * 0.5


def predictor(model: nn.Module | None = None) -> Predictor:
    return Predictor(OpenedModel.from_network(model or Darken(), device="cpu"), tile=0)


def pattern(height: int, width: int, i: int) -> np.ndarray:
    """Smooth gradients (chroma subsampling keeps them) that change from frame to frame."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (np.arange(width) * 200 // width + 30)[None]
    img[..., 1] = (np.arange(height) * 200 // height + 30)[:, None]
    img[..., 2] = 40 + 12 * i
    return img


def make_clip(path, width=64, height=48, audio=False, subtitles=False, pix_fmt="yuv420p", frames=FRAMES):
    """An H.264 clip of `frames` frames at 24 fps, with a 440 Hz AAC track and two mov_text subtitles if asked."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if audio:
            sound = out.add_stream("aac", rate=RATE)
            sound.layout = "stereo"
        if subtitles:
            text = out.add_mux_stream("mov_text")
            text.time_base = Fraction(1, 1000)
            text.metadata["language"] = "eng"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(height, width, i), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio:
            total = RATE * frames // FPS
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / RATE)).astype(np.float32)
            for pos in range(0, total, 1024):
                chunk = wave[pos : pos + 1024]
                frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = RATE, pos
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
        if subtitles:
            for start_ms, words in ((0, "first line"), (250, "second line")):
                packet = av.Packet(struct.pack(">H", len(words)) + words.encode())
                packet.stream, packet.pts, packet.dts, packet.duration = text, start_ms, start_ms, 200
                packet.time_base = text.time_base
                out.mux(packet)
    return path


def probe(path):
    """Per stream: (type, codec, frame count, duration in s); and the decoded RGB frames."""
    with av.open(str(path)) as c:
        streams = [(s.type, s.codec_context.name, s.frames, s.duration and float(s.duration * s.time_base))
                   for s in c.streams]
        rate = c.streams.video[0].average_rate
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return streams, rate, frames


def packets(path, kind):
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(getattr(c.streams, kind)[0]) if p.size]


def test_every_frame_is_restored_with_size_rate_count_duration_and_audio(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", audio=True)
    result = deblur_video(clip, tmp_path / "out.mp4", predictor(), batch=5)  # 12 frames: batches of 5, 5, 2
    assert result.error is None and result.frames == FRAMES and result.size == (48, 64)
    assert result.codec == "libx264 yuv420p" and result.copied == ["audio aac (und)"]
    (in_streams, in_rate, in_frames), (out_streams, out_rate, out_frames) = probe(clip), probe(tmp_path / "out.mp4")
    assert [s[:3] for s in out_streams] == [s[:3] for s in in_streams]  # video first, then audio; same counts
    assert [s[3] for s in out_streams] == pytest.approx([s[3] for s in in_streams], abs=1e-3)  # durations
    assert out_rate == in_rate == FPS
    assert len(out_frames) == FRAMES and out_frames[0].shape == (48, 64, 3)
    for before, after in zip(in_frames, out_frames):  # the model's output, frame by frame (H.264 adds a little)
        assert np.abs(after.astype(float) - before / 2).mean() < 2.0
    assert packets(tmp_path / "out.mp4", "audio") == packets(clip, "audio")  # copied, not re-encoded
    assert not list(tmp_path.glob(".*.tmp"))


def test_odd_size_is_kept_with_full_chroma(tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", width=65, height=47, pix_fmt="yuv444p")
    result = deblur_video(clip, tmp_path / "odd_out.mkv", predictor(), batch=4)
    assert result.error is None and result.size == (47, 65) and result.codec == "libx264 yuv444p"
    _, rate, frames = probe(tmp_path / "odd_out.mkv")
    assert len(frames) == FRAMES and frames[0].shape == (47, 65, 3) and rate == FPS
    assert np.abs(frames[3].astype(float) - pattern(47, 65, 3) / 2).mean() < 2.0


def test_subtitles_are_copied(tmp_path):
    clip = make_clip(tmp_path / "subs.mp4", audio=True, subtitles=True)
    result = deblur_video(clip, tmp_path / "out.mp4", predictor())
    assert result.error is None and result.copied == ["audio aac (und)", "subtitle mov_text (eng)"]
    texts = [p for p in packets(tmp_path / "out.mp4", "subtitles") if len(p) > 2]
    assert texts == [struct.pack(">H", 10) + b"first line", struct.pack(">H", 11) + b"second line"]


def test_start_and_end_restore_a_part_from_time_zero(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", audio=True)
    out = tmp_path / "part.mp4"
    result = deblur_video(clip, out, predictor(), start=0.125, end=0.375)  # frames 3..8 at 24 fps
    assert result.error is None and result.frames == 6
    streams, _, frames = probe(out)
    assert streams[0][2] == 6 and streams[0][3] == pytest.approx(0.25, abs=1e-3)
    assert streams[1][3] == pytest.approx(0.25, abs=0.03)  # audio cut at packet boundaries (1024 samples)
    assert np.abs(frames[0].astype(float) - pattern(48, 64, 3) / 2).mean() < 2.0  # the first frame is frame 3
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).time == pytest.approx(0.0, abs=1e-3)
    assert count_frames(clip, 0.125, 0.375) == 6 and count_frames(clip) == FRAMES


def test_bad_inputs_give_one_line_and_leave_nothing(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", audio=True)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    cases = [
        (tmp_path / "junk.mp4", tmp_path / "a.mp4", {}, "junk.mp4: not a video FFmpeg can read"),
        (clip, tmp_path / "b.webm", {}, "cannot copy audio stream 1 (aac) into .webm"),
        (clip, tmp_path / "c.mp4", {"start": 0.3, "end": 0.2}, "--end 0.2 is not after --start 0.3"),
        (clip, tmp_path / "d.mp4", {"start": 5.0}, "no frames between --start and --end"),
        (clip, tmp_path / "e.gif", {}, "nafft writes video as"),
    ]
    for source, target, options, message in cases:
        result = deblur_video(source, target, predictor(), **options)
        assert result.error is not None and message in result.error and "\n" not in result.error
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "junk.mp4"]  # no temporary files left


def test_webm_without_audio_is_vp9(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    result = deblur_video(clip, tmp_path / "out.webm", predictor())
    assert result.error is None and result.codec == "libvpx-vp9 yuv420p"
    streams, _, frames = probe(tmp_path / "out.webm")
    assert streams[0][1] == "vp9" and len(frames) == 5


def test_ten_bit_video_stays_ten_bit(tmp_path):
    clip = make_clip(tmp_path / "deep.mp4", pix_fmt="yuv420p10le", frames=4)
    result = deblur_video(clip, tmp_path / "out.mp4", predictor(nn.Identity()))
    assert result.error is None and result.codec == "libx264 yuv420p10le"
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_rotation_flag_turns_frames_upright():
    frame = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    np.testing.assert_array_equal(_upright(frame, 0), frame)
    np.testing.assert_array_equal(_upright(frame, -90), np.rot90(frame, k=-1))  # a phone held upright
    np.testing.assert_array_equal(_upright(frame, 90), np.rot90(frame, k=1))
    np.testing.assert_array_equal(_upright(frame, 180), frame[::-1, ::-1])


def test_names():
    assert is_video_file("a/Clip.MP4") and not is_video_file("a/.clip.mp4") and not is_video_file("a.png")
    from pathlib import Path

    assert video_output_name(Path("x/clip.mov")) == "clip.mov"
    assert video_output_name(Path("x/clip.MTS")) == "clip.mkv"


def test_tiny_nafnet_video_matches_the_predictor(tmp_path):
    """With a real (tiny, TLC) NAFNet the frames written are the predictor's output for the decoded frames."""
    from nafft.models import build_model
    from tests.inference.conftest import randomize, tiny_config

    network = randomize(build_model(tiny_config()), std=0.05).eval()
    run = predictor(network)
    clip = make_clip(tmp_path / "clip.mp4", frames=3, pix_fmt="yuv444p")  # full chroma keeps the network's detail
    assert deblur_video(clip, tmp_path / "out.mkv", run, batch=2).error is None
    _, _, inputs = probe(clip)
    _, _, outputs = probe(tmp_path / "out.mkv")
    for before, after in zip(inputs, outputs):
        want = run(torch.from_numpy(before.transpose(2, 0, 1) / np.float32(255))).numpy().transpose(1, 2, 0)
        to_prediction = np.abs(after / 255.0 - np.clip(want, 0, 1)).mean()
        to_input = np.abs(after / 255.0 - before / 255.0).mean()
        assert to_prediction < 0.03 and to_prediction < 0.3 * to_input  # CRF 18 rounds the network's pixel noise


def test_frames_per_model_call(tmp_path):
    """One frame per call on the CPU by default (measured faster there), `batch` frames when asked."""

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.batches = []

        def forward(self, x):
            self.batches.append(x.shape[0])
            return x

    clip = make_clip(tmp_path / "clip.mp4", frames=7)
    for batch, expected in ((None, [1] * 7), (3, [3, 3, 1])):
        counting = Counting().eval()  # in eval mode the opened model is this module, not a copy
        assert deblur_video(clip, tmp_path / "out.mp4", predictor(counting), batch=batch).error is None
        assert counting.batches == expected
