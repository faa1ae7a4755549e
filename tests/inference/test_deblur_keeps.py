"""`nafft deblur` end to end on what photographers and video people bring: metadata, grayscale, resumed batches,
videos, and console output that stays clean in a log file."""

import io
import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from nafft.cli import main
from nafft.cli.console import Progress
from nafft.data.io import decode_with_metadata, write_image
from nafft.inference import Predictor, open_model
from tests.data.test_image_metadata import EXIF_IFD, MAKE, ORIENTATION, XMP, camera_exif, srgb_icc
from tests.inference.conftest import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def deblur(*args) -> int:
    return main(["deblur", *map(str, args), "--threads", "1"])


def test_camera_jpeg_keeps_profile_exif_and_xmp_and_is_turned_once(tmp_path, checkpoint):
    stored = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(stored).save(tmp_path / "cam.jpg", quality=90, icc_profile=srgb_icc(), exif=camera_exif(),
                                    xmp=XMP)
    assert deblur(tmp_path / "cam.jpg", "-o", tmp_path / "out", "--checkpoint", checkpoint) == 0
    with PILImage.open(tmp_path / "out" / "cam.jpg") as im:
        exif, info, size = im.getexif(), dict(im.info), im.size
    assert size == (24, 40)  # upright: 24 wide, 40 high, stored so and tagged 1
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "NaffCam" and exif.get_ifd(EXIF_IFD)
    assert info["icc_profile"] == srgb_icc() and b'tiff:Orientation="1"' in info["xmp"]


@pytest.mark.parametrize("bit_depth, name", [(8, "g.png"), (16, "g16.png"), (8, "g.jpg"), (16, "g16.tif")])
def test_gray_stays_gray_with_its_bit_depth(tmp_path, checkpoint, bit_depth, name):
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    gray = (np.random.default_rng(1).random((29, 35)) * np.iinfo(dtype).max).astype(dtype)
    write_image(tmp_path / name, gray, bit_depth=bit_depth)
    assert deblur(tmp_path / name, "-o", tmp_path / "out", "--checkpoint", checkpoint) == 0
    with PILImage.open(tmp_path / "out" / name) as im:
        assert im.mode == ("L" if bit_depth == 8 else "I;16")
    rgb, _, depth, meta = decode_with_metadata(tmp_path / "out" / name)
    assert meta.gray and depth == bit_depth
    # the mean of the model's three channels (what the network computes from the gray repeated to RGB)
    source = decode_with_metadata(tmp_path / name)[0]
    x = torch.from_numpy(source.transpose(2, 0, 1) / np.float32(np.iinfo(dtype).max))
    pred = Predictor(open_model(checkpoint, device="cpu"), tile=0)(x).mean(0).clamp(0, 1).numpy()
    tolerance = 12 if name.endswith(".jpg") else 1  # JPEG at the quality of its input, on pixel noise
    assert np.abs(rgb[..., 0] / np.iinfo(dtype).max - pred).max() * 255 <= tolerance


def test_skip_existing_writes_only_missing_outputs_and_the_default_replaces(tmp_path, checkpoint, capsys):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", np.random.default_rng(i).random((20, 22, 3)))
    out = tmp_path / "out"
    assert deblur(tmp_path / "in", "-o", out, "--checkpoint", checkpoint) == 0
    written = (out / "0.png").read_bytes()
    untouched = (out / "1.png").stat().st_mtime_ns
    (out / "0.png").unlink()
    (out / "2.png").write_bytes(b"kept")  # what a resumed batch must not touch
    capsys.readouterr()
    assert deblur(tmp_path / "in", "-o", out, "--checkpoint", checkpoint, "--skip-existing") == 0
    summary = capsys.readouterr().out
    assert "deblurred 1 of 1 images" in summary and "2 existing outputs left as they were" in summary
    assert (out / "0.png").read_bytes() == written  # the missing one, written again
    assert (out / "2.png").read_bytes() == b"kept" and (out / "1.png").stat().st_mtime_ns == untouched
    assert deblur(tmp_path / "in", "-o", out, "--checkpoint", checkpoint, "--skip-existing") == 0
    assert "nothing to do: all 3 outputs exist" in capsys.readouterr().out
    assert deblur(tmp_path / "in", "-o", out, "--checkpoint", checkpoint) == 0  # default: replaced
    assert (out / "2.png").read_bytes() != b"kept"


def test_help_states_what_happens_to_existing_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["deblur", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Outputs that exist are replaced" in text and "--skip-existing" in text


def test_errors_are_whole_lines_in_a_log_file(tmp_path, checkpoint, capsys):
    for name in ("a.png", "c.png"):
        write_image(tmp_path / "in" / name, np.random.default_rng(0).random((20, 22, 3)))
    (tmp_path / "in" / "b.png").write_bytes(b"broken")
    assert deblur(tmp_path / "in", "-o", tmp_path / "out", "--checkpoint", checkpoint) == 1
    err = capsys.readouterr().err
    assert "\r" not in err  # stderr is not a terminal here: no bar, whole lines
    lines = err.splitlines()
    assert sum(line.startswith("nafft: error: ") and "b.png" in line for line in lines) == 1
    assert "deblur: 3/3 img" in err


def test_progress_on_a_terminal_writes_messages_and_log_records_above_the_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with Progress(3, "img", "deblur") as progress:
        progress.update(1)
        progress.write("nafft: error: x.png: broken")
        logging.getLogger("nafft.test").warning("a library message")
        progress.update(2)
    text = stream.getvalue()
    # each message starts after the bar was cleared (a carriage return) and ends its own line
    assert "\rnafft: error: x.png: broken\n" in text and "a library message\n" in text
    assert "3/3" in text


def test_float_rgb_tiff_is_named(tmp_path, checkpoint, capsys):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((8, 9, 3), np.float32), photometric="rgb")
    assert deblur(tmp_path / "f.tif", "-o", tmp_path / "out", "--checkpoint", checkpoint) == 1
    assert "f.tif: floating-point images are not supported" in capsys.readouterr().err


def test_video_end_to_end(tmp_path, checkpoint, capsys):
    av = pytest.importorskip("av")
    from tests.inference.test_video import make_clip

    clip = make_clip(tmp_path / "clip.mp4", audio=True, frames=6)
    assert deblur(clip, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--batch", "4") == 0
    captured = capsys.readouterr()
    assert "deblurred 1 of 1 videos (6 frames) into" in captured.out
    assert "clip.mp4: 6/6 frame" in captured.err and "copied audio aac" in captured.err
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].frames == 6 and len(c.streams.audio) == 1
    assert deblur(clip, "-o", tmp_path / "part.mkv", "--checkpoint", checkpoint, "--start", "0.1", "--end", "0.2") == 0
    with av.open(str(tmp_path / "part.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 2  # frames 3 and 4 at 24 fps (t = 0.125, 0.167)
    before = (tmp_path / "out.mp4").stat().st_mtime_ns
    assert deblur(clip, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--skip-existing") == 0
    assert (tmp_path / "out.mp4").stat().st_mtime_ns == before


def test_video_mistakes_are_one_line(tmp_path, checkpoint, capsys):
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3)))
    assert deblur(tmp_path / "a.png", "-o", tmp_path / "x.mp4", "--checkpoint", checkpoint) == 2
    assert "-o " in capsys.readouterr().err
    assert deblur(tmp_path / "a.png", "-o", tmp_path / "o", "--start", "1", "--checkpoint", checkpoint) == 2
    assert "--start and --end apply to videos" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert deblur(tmp_path / "junk.mp4", "-o", tmp_path / "o", "--checkpoint", checkpoint) == 1
    err = capsys.readouterr().err
    assert "nafft: error: " in err and "junk.mp4: not a video FFmpeg can read" in err and "Traceback" not in err
