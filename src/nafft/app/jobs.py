"""The work behind `nafft serve`: uploads checked, a queue, one deblurring job at a time, results kept for a while.

A job is one uploaded file restored by one of the models the server was started with, at a strength. The file goes
through `nafft.inference.deblur.deblur_file`, the code `nafft deblur` runs, so the download holds the pixels the CLI
writes, in the input's format, bit depth, alpha and metadata. One worker thread runs the jobs in order: on a CPU one
job already uses every core, and on a GPU one at a time keeps memory predictable. Uploads are files on disk (never
whole in memory), checked from their header before they join the queue: files that are not images, more
megapixels than the limit, and decompression bombs (a small file that would decode to a huge image) are refused
with one line that names the file. Finished jobs and their files are deleted after `keep_seconds`, and the queue
holds at most `max_jobs` unfinished jobs, so memory and disk stay bounded however many clients come.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from nafft.data.io import (
    IMAGE_SUFFIXES,
    ImageReadError,
    decode_image,
    image_size,
    quantize,
    to_float,
    write_image,
)
from nafft.errors import UserError
from nafft.inference.deblur import Job as FileJob
from nafft.inference.deblur import deblur_file
from nafft.inference.opened_model import OpenedModel, open_model
from nafft.inference.predict import DEFAULT_STRENGTH, Predictor, check_strength
from nafft.weights import bundled_models

log = logging.getLogger(__name__)

DEFAULT_MAX_MEGAPIXELS = 50.0
# A file that would decode to more than this many pixels per byte is a decompression bomb: zlib cannot compress
# better than about 1,000:1, so even a flat 8-bit gray PNG needs a byte per 1,000 pixels; only crafted files (1-bit
# images of one colour, repeated chunks) go below. Real photographs use 0.1-3 bytes per pixel.
BOMB_PIXELS_PER_BYTE = 1000
PREVIEW_SIDE = 4096  # the before/after pictures on the page are scaled down beyond this; the download never is
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadError(UserError):
    """An upload refused before it joins the queue; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers: an opened model, an id for the API, and what to call it."""

    id: str
    opened: OpenedModel
    title: str
    summary: str = ""


@dataclass
class Job:
    """One uploaded file and what became of it; `state` is queued, running, done or error."""

    id: str
    name: str
    model: ModelChoice
    strength: float | str  # a number, or "auto": the model's guard chooses (`applied_strength` once done)
    source: Path
    target: Path
    state: str = "queued"
    message: str = ""
    size: tuple[int, int] = (0, 0)  # (width, height) as displayed
    bit_depth: int = 8
    tiles: tuple[int, int] = (0, 0)  # (done, total) while a large image is tiled
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    applied_strength: float | None = None

    @property
    def download_name(self) -> str:
        path = Path(self.name)
        return f"{path.stem}-deblurred{path.suffix}"

    def public(self) -> dict:
        """What the API says about the job."""
        now = time.monotonic()
        running = self.started is not None and self.finished is None
        return {
            "id": self.id, "name": self.name, "state": self.state, "message": self.message,
            "model": self.model.id, "model_title": self.model.title, "strength": self.strength,
            "applied_strength": self.applied_strength, "width": self.size[0], "height": self.size[1], "bit_depth": self.bit_depth,
            "tiles_done": self.tiles[0], "tiles": self.tiles[1],
            "seconds": round((self.finished or now) - self.started, 2) if self.started is not None else None,
            "running": running, "download_name": self.download_name,
        }  # fmt: skip


def offered_models(checkpoints: list[str], device_name: str, tlc: bool) -> list[ModelChoice]:
    """The bundled models and the given checkpoints, opened, titled from their cards; the first checkpoint (else
    the bundled default) first.

    Raises:
        UserError: a checkpoint that cannot be opened, or a preset's untrained weights.
    """
    sources = list(checkpoints) + [m.name for m in bundled_models() if m.name not in checkpoints]
    choices, ids = [], set()
    for source in sources:
        opened = open_model(source, device=device_name, tlc=tlc)
        if not opened.trained:
            raise UserError(f"--checkpoint {source}: a preset has untrained weights; give a weight file or a bundled "
                            "model (`nafft models`)")
        title = str(opened.card.get("name") or opened.name)
        model_id, n = title, 2
        while model_id in ids:  # two files of the same name
            model_id, n = f"{title}-{n}", n + 1
        ids.add(model_id)
        summary = opened.card.get("summary") or (opened.path if opened.kind == "checkpoint" else opened.describe())
        choices.append(ModelChoice(model_id, opened, model_id, str(summary)))
    if not choices:
        raise UserError("this installation has no bundled model: pass --checkpoint FILE")
    return choices


def safe_name(name: str) -> str:
    """A file name that can live in a folder of ours: the last path part, odd characters replaced, at most 100
    characters, suffix kept."""
    base = _NAME_CHARS.sub("_", Path(name.replace("\\", "/")).name).strip(" .") or "image"
    stem, suffix = Path(base).stem[:90], Path(base).suffix[:10]
    return (stem or "image") + suffix


def check_upload(path: Path, name: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an uploaded image file, from its header; refuses what the server will not deblur.

    Raises:
        UploadError: a suffix nafft does not read (415), not an image (400), more than `max_pixels` or a
            decompression bomb (413); the message names the file as the user called it.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UploadError(f"{name}: not an image type nafft reads; it reads {', '.join(IMAGE_SUFFIXES)}", 415)
    try:
        height, width = image_size(path)
    except ImageReadError as exc:
        message = str(exc).replace(str(path), name)
        if "decompression bomb" in message:  # Pillow's own limit, twice PIL.Image.MAX_IMAGE_PIXELS
            raise UploadError(f"{name}: a decompression bomb (a {_size(path)} file that would decode to more than "
                              f"{2 * PILImage.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); refused", 413) from None
        raise UploadError(message) from None
    pixels = width * height
    if pixels > BOMB_PIXELS_PER_BYTE * max(1, path.stat().st_size):
        raise UploadError(f"{name}: a decompression bomb ({width}x{height} = {pixels / 1e6:,.0f} megapixels in a "
                          f"{_size(path)} file); refused", 413)
    if pixels > max_pixels:
        raise UploadError(f"{name}: {width}x{height} is {pixels / 1e6:.1f} megapixels, over this server's limit of "
                          f"{max_pixels / 1e6:g} (nafft serve --max-megapixels)", 413)
    return width, height


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} B"


def write_preview(source: Path, target: Path) -> None:
    """An 8-bit PNG of an image file for the page (upright, at most `PREVIEW_SIDE` px a side)."""
    rgb, alpha, _ = decode_image(source)
    pixels = quantize(to_float(rgb)) if rgb.dtype != np.uint8 else rgb
    if alpha is not None:
        pixels = np.dstack([pixels, quantize(to_float(alpha)) if alpha.dtype != np.uint8 else alpha])
    if max(pixels.shape[:2]) > PREVIEW_SIDE:
        image = PILImage.fromarray(pixels)
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), PILImage.Resampling.LANCZOS)
        pixels = np.asarray(image)
    write_image(target, pixels[..., :3], alpha=pixels[..., 3] if pixels.shape[-1] == 4 else None,
                compress_level=1)


class JobQueue:
    """Uploaded files deblurred one at a time by a worker thread, in the order they came.

    Args:
        models: the models the page offers, the default first.
        max_megapixels: uploads with more pixels are refused.
        max_jobs: unfinished jobs the queue holds; more are refused (HTTP 503) until some finish.
        keep_seconds: finished jobs and their files are deleted this long after they finish.
        workdir: where uploads and results live (a new temporary folder, removed by `close`, by default).
        predictor_options: `Predictor` options (tile, overlap, self_ensemble, half, memory_budget).
    """

    def __init__(self, models: list[ModelChoice], max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 max_jobs: int = 64, keep_seconds: float = 3600.0, workdir: Path | None = None,
                 predictor_options: dict | None = None):
        if not models:
            raise UserError("nafft serve: no model to offer")
        self.models = {m.id: m for m in models}
        self.default_model = models[0].id
        self.max_pixels = int(max_megapixels * 1e6)
        # the largest file a picture within the limit can be: 16-bit RGBA, uncompressed, plus headers and metadata
        self.max_upload_bytes = self.max_pixels * 8 + (16 << 20)
        self.max_jobs = max_jobs
        self.keep_seconds = keep_seconds
        self.predictor_options = dict(predictor_options or {})
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="nafft-serve-")) if workdir is None else Path(workdir)
        self.jobs: dict[str, Job] = {}
        self._order: list[str] = []  # unfinished job ids, oldest first
        self._lock = threading.Lock()
        self._todo: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="nafft-serve-worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------------------------------- uploads

    def upload_path(self, name: str) -> tuple[str, Path]:
        """A new job id and the path its upload is to be written to (its folder created)."""
        job_id = secrets.token_urlsafe(12)
        folder = self.workdir / job_id
        folder.mkdir(parents=True)
        return job_id, folder / "in" / safe_name(name)

    def discard(self, job_id: str) -> None:
        """Remove what an upload that never became a job left (a refused or broken-off upload)."""
        shutil.rmtree(self.workdir / job_id, ignore_errors=True)

    def submit(self, job_id: str, source: Path, name: str, model: str | None = None,
               strength: float | str = DEFAULT_STRENGTH) -> Job:
        """Check an uploaded file and queue it.

        Raises:
            UploadError: an unknown model (404), a strength outside 0..1 (400), a file that is refused
                (`check_upload`), or a full queue (503). The upload is deleted then.
        """
        try:
            choice = self.models.get(model or self.default_model)
            if choice is None:
                raise UploadError(f"no model '{model}' here; the models are {', '.join(self.models)}", 404)
            try:
                strength = check_strength(strength)
            except UserError as exc:
                raise UploadError(str(exc).replace("--strength", "strength")) from None
            width, height = check_upload(source, safe_name(name), self.max_pixels)
            self.expire()
            with self._lock:
                if len(self._order) >= self.max_jobs:
                    raise UploadError(f"the queue is full ({self.max_jobs} images waiting); try again when some are "
                                      "done", 503)
                target = source.parent.parent / "out" / source.name
                job = Job(job_id, safe_name(name), choice, strength, source, target, size=(width, height))
                self.jobs[job_id] = job
                self._order.append(job_id)
        except UserError:
            self.discard(job_id)
            raise
        self._todo.put(job)
        return job

    # ------------------------------------------------------------------------------------------- state

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def position(self, job: Job) -> int:
        """0 while running or finished, else 1 + the number of unfinished jobs ahead of it."""
        with self._lock:
            if job.state != "queued" or job.id not in self._order:
                return 0
            ahead = self._order.index(job.id)
            running = 1 if self._order and self.jobs[self._order[0]].state == "running" else 0
            return ahead - running + 1

    def describe(self, job: Job) -> dict:
        return job.public() | {"position": self.position(job)}

    def counts(self) -> dict:
        with self._lock:
            states = [self.jobs[i].state for i in self._order]
        return {"running": states.count("running"), "waiting": states.count("queued")}

    def expire(self) -> None:
        """Delete finished jobs (and their files) older than `keep_seconds`."""
        now = time.monotonic()
        with self._lock:
            old = [j for j in self.jobs.values() if j.finished is not None and now - j.finished > self.keep_seconds]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            self.discard(job.id)

    def close(self) -> None:
        """Stop the worker after the job it is running and remove the working folder if it is ours."""
        self._todo.put(None)
        self._worker.join(timeout=60)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- worker

    def _work(self) -> None:
        while (job := self._todo.get()) is not None:
            try:
                self._run(job)
            except Exception as exc:  # our bug: said on the page and in the log, and the worker goes on
                log.exception("job %s (%s) failed", job.id, job.name)
                job.state, job.message = "error", f"{job.name}: internal error: {exc}"
            finally:
                job.finished = time.monotonic()
                with self._lock:
                    if job.id in self._order:
                        self._order.remove(job.id)

    def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.monotonic()

        def on_tile(done: int, total: int) -> None:
            job.tiles = (done, total)

        predictor = Predictor(job.model.opened, strength=job.strength, on_tile=on_tile, **self.predictor_options)
        result = deblur_file(FileJob(job.source, job.target), predictor)
        if result.error:
            job.state, job.message = "error", result.error.replace(str(job.source), job.name)
            return
        job.bit_depth = result.bit_depth or 8
        job.applied_strength = predictor.last_strengths[0] if predictor.last_strengths else None
        folder = job.source.parent.parent
        write_preview(job.source, folder / "before.png")
        write_preview(job.target, folder / "after.png")
        job.state = "done"
        job.message = f"{result.seconds:.1f} s" + (f", {result.tiles} tiles" if result.tiles else "")

    def preview(self, job: Job, which: str) -> Path:
        return job.source.parent.parent / f"{which}.png"
