"""A `nafft serve` app running in this process on a free loopback port, offering a tiny checkpoint and the bundled
model, with a limit of 1 megapixel so that an oversized image is cheap to make."""

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest

pytest.importorskip("starlette", reason="nafft serve needs the app extra: pip install 'nafft[app]'")
pytest.importorskip("uvicorn", reason="nafft serve needs the app extra: pip install 'nafft[app]'")

from nafft.app.jobs import JobQueue, offered_models  # noqa: E402
from nafft.app.server import bind, build_app, make_server  # noqa: E402
from tests.inference.conftest import save_tiny_checkpoint  # noqa: E402

MAX_MEGAPIXELS = 1.0


@contextmanager
def serving(jobs: JobQueue):
    """The app over `jobs` served by uvicorn in a thread; yields its base URL."""
    sock = bind("127.0.0.1", 0)
    server = make_server(build_app(jobs))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("app-ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def app(tiny_checkpoint, tmp_path_factory):
    """(base URL, JobQueue) of a server offering the tiny checkpoint (preselected) and the bundled models."""
    jobs = JobQueue(offered_models([str(tiny_checkpoint)], "cpu", True), max_megapixels=MAX_MEGAPIXELS,
                    workdir=tmp_path_factory.mktemp("serve"))
    with serving(jobs) as url:
        yield url, jobs
    jobs.close()


def request(url: str, data: bytes | None = None, method: str | None = None) -> tuple[int, bytes, dict]:
    """(status, body, headers) of one HTTP request; errors are answers too."""
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def upload(base: str, name: str, data: bytes, **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode({"name": name, **params})
    status, body, _ = request(f"{base}/api/jobs?{query}", data)
    return status, json.loads(body)


def wait_done(base: str, job_id: str, timeout: float = 120) -> dict:
    """The job once it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = request(f"{base}/api/jobs/{job_id}")
        job = json.loads(body)
        assert status == 200, job
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout} s")
