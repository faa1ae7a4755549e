"""nafft serve over HTTP: downloads equal `nafft deblur`'s files, refusals are one line, the queue is bounded."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from torch import nn

from nafft.app.jobs import JobQueue, ModelChoice, UploadError, offered_models, safe_name
from nafft.cli import main
from nafft.data.io import write_image
from nafft.inference import OpenedModel
from tests.app.conftest import request, upload, wait_done


def photo_files(folder: Path) -> list[Path]:
    """A 16-bit PNG, a JPEG with EXIF and an ICC profile, a gray PNG and an RGBA PNG."""
    rng = np.random.default_rng(0)
    write_image(folder / "deep.png", rng.random((40, 52, 3)), bit_depth=16)
    exif = Image.Exif()
    exif[0x010F] = "nafft test camera"  # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = Image.fromarray((rng.random((36, 50, 3)) * 255).astype(np.uint8))
    jpeg.save(folder / "camera.jpg", quality=87, exif=exif, icc_profile=icc)
    write_image(folder / "gray.png", rng.random((30, 28)))
    write_image(folder / "logo.png", rng.random((26, 33, 3)), alpha=rng.random((26, 33)))
    return [folder / n for n in ("deep.png", "camera.jpg", "gray.png", "logo.png")]


@pytest.mark.parametrize("strength", ["1", "0.5"])
def test_downloads_are_the_files_nafft_deblur_writes(app, tiny_checkpoint, tmp_path, strength):
    base, _ = app
    files = photo_files(tmp_path)
    out = tmp_path / "cli"
    assert main(["deblur", *map(str, files), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                 "--strength", strength]) == 0
    for path in files:
        status, job = upload(base, path.name, path.read_bytes(), strength=strength)
        assert status == 202 and job["model"] == "tiny" and job["state"] in ("queued", "running"), job
        job = wait_done(base, job["id"])
        assert job["state"] == "done", job
        status, body, headers = request(f"{base}/api/jobs/{job['id']}/result")
        assert status == 200 and f'filename="{path.stem}-deblurred{path.suffix}"' in headers["content-disposition"]
        assert body == (out / path.name).read_bytes(), path.name  # pixels, format, bit depth, metadata: every byte
    with Image.open(out / "camera.jpg") as im, Image.open(tmp_path / "camera.jpg") as original:
        assert im.getexif()[0x010F] == "nafft test camera" and im.info["icc_profile"] == original.info["icc_profile"]
    status, body, headers = request(f"{base}/api/jobs/{job['id']}/after")
    assert status == 200 and headers["content-type"] == "image/png" and Image.open(io.BytesIO(body)).size == (33, 26)


def test_a_bundled_model_is_offered_beside_the_checkpoint(app):
    base, _ = app
    status, body, _ = request(f"{base}/api/info")
    info = json.loads(body)
    assert status == 200 and info["default_model"] == "tiny"
    assert [m["id"] for m in info["models"]][:2] == ["tiny", "nafft-photo"]
    tiny, photo = info["models"][:2]
    assert not tiny["guard"] and tiny["guard_ceiling"] is None
    assert photo["guard"] and photo["guard_ceiling"] == 0.75  # the bundled guard's cap (its card)
    assert info["max_megapixels"] == 1.0 and info["device"] == "cpu"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_refusals_are_one_line_and_leave_nothing_behind(app, tmp_path):
    base, jobs = app
    before = set(os.listdir(jobs.workdir))
    big = tmp_path / "big.png"
    write_image(big, np.random.default_rng(1).random((1100, 1000, 3)))
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 10000)).save(bomb)
    good = (tmp_path / "ok.png")
    write_image(good, np.zeros((8, 8, 3)))
    cases = [
        ("notes.png", b"this is a text file, not a picture\n", {}, 400,
         "notes.png: not an image file Pillow can identify"),
        ("big.png", big.read_bytes(), {}, 413,
         "big.png: 1000x1100 is 1.1 megapixels, over this server's limit of 1 (nafft serve --max-megapixels)"),
        ("bomb.png", bomb.read_bytes(), {}, 413, "bomb.png: a decompression bomb (12000x10000 = 120 megapixels in a"),
        ("clip.gif", good.read_bytes(), {}, 415, "clip.gif: not an image type nafft reads"),
        ("ok.png", good.read_bytes(), {"model": "nope"}, 404, "no model 'nope' here; the models are tiny, nafft-photo"),
        ("ok.png", good.read_bytes(), {"strength": "3"}, 400, "strength must be from 0 to 1"),
        ("empty.png", b"", {}, 400, "empty.png: an empty file"),
    ]
    for name, data, params, status, message in cases:
        got, body = upload(base, name, data, **params)
        assert got == status and body["error"].startswith(message) and "\n" not in body["error"], (name, body)
    assert set(os.listdir(jobs.workdir)) == before


def test_a_broken_off_upload_leaves_nothing_and_the_server_answers(app):
    base, jobs = app
    before = set(os.listdir(jobs.workdir))
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /api/jobs?name=half.png HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
        conn.sendall(b"\x89PNG" + bytes(100_000))
        deadline = time.monotonic() + 10
        while set(os.listdir(jobs.workdir)) == before and time.monotonic() < deadline:
            time.sleep(0.01)  # the upload's folder appears
    deadline = time.monotonic() + 10
    while set(os.listdir(jobs.workdir)) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(os.listdir(jobs.workdir)) == before
    status, body, _ = request(f"{base}/api/queue")
    assert status == 200 and json.loads(body) == {"running": 0, "waiting": 0}


class Gate(nn.Module):
    """An identity network that waits until its gate opens (a job that runs as long as a test wants)."""

    def __init__(self):
        super().__init__()
        self.open = threading.Event()

    def forward(self, x):
        assert self.open.wait(timeout=60)
        return x


def test_the_queue_runs_one_job_at_a_time_and_refuses_when_full(tmp_path):
    gate = Gate().eval()
    model = ModelChoice("gate", OpenedModel.from_network(gate, device="cpu"), "gate")
    jobs = JobQueue([model], max_jobs=2, keep_seconds=0, workdir=tmp_path / "work")
    try:
        png = tmp_path / "a.png"
        write_image(png, np.random.default_rng(2).random((16, 16, 3)))
        queued = []
        for name in ("a.png", "b.png"):
            job_id, path = jobs.upload_path(name)
            path.parent.mkdir(parents=True)
            path.write_bytes(png.read_bytes())
            queued.append(jobs.submit(job_id, path, name))
        deadline = time.monotonic() + 30
        while queued[0].state != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [jobs.describe(j)["state"] for j in queued] == ["running", "queued"]
        assert [jobs.position(j) for j in queued] == [0, 1] and jobs.counts() == {"running": 1, "waiting": 1}
        job_id, path = jobs.upload_path("c.png")
        path.parent.mkdir(parents=True)
        path.write_bytes(png.read_bytes())
        with pytest.raises(UploadError, match="the queue is full") as info:
            jobs.submit(job_id, path, "c.png")
        assert info.value.status == 503 and not (jobs.workdir / job_id).exists()
        gate.open.set()
        deadline = time.monotonic() + 30
        while any(j.state != "done" for j in queued) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [j.state for j in queued] == ["done", "done"]
        assert np.array_equal(np.asarray(Image.open(queued[0].target)), np.asarray(Image.open(png)))  # identity
        jobs.expire()  # keep_seconds=0: finished jobs and their files go
        assert jobs.jobs == {} and os.listdir(jobs.workdir) == []
    finally:
        gate.open.set()
        jobs.close()


def test_upload_names_cannot_leave_their_folder():
    assert safe_name("../../etc/passwd.png") == "passwd.png"
    assert safe_name("C:\\Users\\me\\photo 1.JPG") == "photo 1.JPG"
    assert safe_name("a<b>|c?.png") == "a_b_c_.png" and safe_name("") == "image" and safe_name("..") == "image"


def test_serve_listens_on_loopback_and_stops_on_ctrl_c(tiny_checkpoint):
    process = subprocess.Popen(
        [sys.executable, "-m", "nafft", "serve", "--port", "0", "--checkpoint", str(tiny_checkpoint), "--threads", "1"],
        stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert line.startswith("nafft serve: http://127.0.0.1:") and "tiny, nafft-photo" in line, line
        url = line.split()[2]
        status, body, _ = request(url)
        assert status == 200 and b'<select id="model">' in body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "missing.safetensors"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nafft: error: ") and "missing.safetensors" in err and "\n" not in err


def test_tiles_of_a_large_image_are_reported(tmp_path, tiny_checkpoint):
    jobs = JobQueue(offered_models([str(tiny_checkpoint)], "cpu", True)[:1], workdir=tmp_path / "work",
                    predictor_options={"tile": 64, "overlap": 8})
    try:
        job_id, path = jobs.upload_path("wide.png")
        path.parent.mkdir(parents=True)
        write_image(path, np.random.default_rng(3).random((100, 150, 3)))
        job = jobs.submit(job_id, path, "wide.png")
        deadline = time.monotonic() + 60
        while job.state not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.01)
        state = jobs.describe(job)
        assert state["state"] == "done" and state["tiles"] > 1 and state["tiles_done"] == state["tiles"]
        assert state["message"].endswith(f"{state['tiles']} tiles")
    finally:
        jobs.close()
