"""The HTTP side of `nafft serve`: one page and a small JSON API over a `JobQueue` (Starlette on uvicorn).

The API the page uses (and `benchmarks/bench_app.py`):

- `GET /api/info`: the models offered (id, title, summary), the default, the device, the limits.
- `POST /api/jobs?name=NAME&model=ID&strength=S` with the file's bytes as the body (no multipart: the body is
  streamed to disk as it comes, and a client that breaks off leaves nothing behind): 202 and the job, or 4xx/503
  and `{"error": "one line"}`.
- `GET /api/jobs/ID`: the job's state (queued with its position, running with tiles done, done, error).
- `GET /api/jobs/ID/result`: the deblurred file, in the input's format, bit depth and metadata.
- `GET /api/jobs/ID/before`, `/after`: 8-bit PNG previews for the comparison slider.
- `GET /api/queue`: how many jobs run and wait.

Job ids are random, so one client cannot fetch another's images by counting.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nafft import __version__
from nafft.app.jobs import JobQueue, UploadError
from nafft.errors import UserError
from nafft.inference.predict import DEFAULT_STRENGTH, check_strength

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
                ".tiff": "image/tiff", ".webp": "image/webp", ".bmp": "image/bmp"}


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_app(jobs: JobQueue) -> Starlette:
    """The ASGI app serving the page and the API over `jobs`."""

    async def info(request: Request) -> JSONResponse:
        models = [{"id": m.id, "title": m.title, "summary": m.summary, "guard": m.opened.guard is not None,
                   "guard_ceiling": m.opened.guard.ceiling if m.opened.guard is not None else None}
                  for m in jobs.models.values()]
        device = next(iter(jobs.models.values())).opened.device
        return JSONResponse({
            "models": models, "default_model": jobs.default_model, "device": str(device),
            "max_megapixels": jobs.max_pixels / 1e6, "max_upload_bytes": jobs.max_upload_bytes,
            "version": __version__,
        })  # fmt: skip

    async def create_job(request: Request) -> Response:
        params = request.query_params
        name = params.get("name", "")
        try:
            strength = check_strength(params.get("strength", DEFAULT_STRENGTH))
        except UserError as exc:
            return _error(str(exc).replace("--strength", "strength"), 400)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > jobs.max_upload_bytes:
            return _error(f"{name}: {int(length) / 2**20:.0f} MiB is larger than any image within this server's "
                          f"limit of {jobs.max_pixels / 1e6:g} megapixels", 413)
        job_id, path = jobs.upload_path(name or "image")
        received = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > jobs.max_upload_bytes:
                        jobs.discard(job_id)
                        return _error(f"{name}: larger than any image within this server's limit of "
                                      f"{jobs.max_pixels / 1e6:g} megapixels", 413)
                    f.write(chunk)
        except ClientDisconnect:
            jobs.discard(job_id)
            log.info("upload of %s broken off after %d bytes", name, received)
            return Response(status_code=400)
        if received == 0:
            jobs.discard(job_id)
            return _error(f"{name or 'the upload'}: an empty file", 400)
        try:
            job = await anyio.to_thread.run_sync(jobs.submit, job_id, path, name or "image",
                                                 params.get("model"), strength)
        except UploadError as exc:
            return _error(str(exc), exc.status)
        return JSONResponse(jobs.describe(job), status_code=202)

    def _job(request: Request):
        return jobs.get(request.path_params["job_id"])

    async def job_state(request: Request) -> Response:
        job = _job(request)
        if job is None:
            return _error("no such job (finished jobs are kept for a while, then deleted)", 404)
        return JSONResponse(jobs.describe(job))

    async def job_file(request: Request) -> Response:
        job = _job(request)
        which = request.path_params["which"]
        if which not in ("result", "before", "after"):
            return _error(f"no '{which}' for a job: result, before or after", 404)
        if job is None or job.state != "done":
            return _error("no result for this job" if job is not None else "no such job", 404)
        if which == "result":
            return FileResponse(job.target, filename=job.download_name,
                                media_type=_MEDIA_TYPES.get(job.target.suffix.lower(), "application/octet-stream"))
        return FileResponse(jobs.preview(job, which), media_type="image/png")

    async def queue_state(request: Request) -> JSONResponse:
        return JSONResponse(jobs.counts())

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/queue", queue_state),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_state),
        Route("/api/jobs/{job_id}/{which}", job_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), IPv6 when the host is; connections wait in its
    backlog until the server runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def make_server(app: Starlette):
    """A uvicorn server for `app` (quiet: errors only); `server.run(sockets=[bind(...)])` serves until Ctrl-C or
    `server.should_exit = True`."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
