"""One way to write a file: atomically, durably, with the permissions `open()` would give.

Every file nafft writes whole (images, tiles, checkpoints, training states, exports, videos, reports, manifests)
goes through `atomic_write` or its two halves, `new_temp` and `commit_temp`: the content is written to a hidden
temporary file in the target's folder, flushed to disk (fsync), renamed over the target (`os.replace`, atomic on
POSIX), and the folder entry is flushed too. A crash or a full disk mid-write leaves the previous file intact and, at
worst, a stale `.NAME.XXXXXXXX.tmp` that readers skip (hidden). Appended logs (metrics.jsonl), TensorBoard's event
files and the uploads `nafft serve` receives are written directly.

Permissions: the file gets mode 0o666 minus the user's umask, exactly as `open(path, "w")` gives (0o644 under umask
022); when the target already exists its mode is kept, as writing into it with `open()` would keep it. The mode is
set on the temporary file just before the rename, whatever the writer did (`tempfile.mkstemp`, and writers such as
safetensors' `save_file`, create 0o600 files that a web server, a colleague or a container user cannot read).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the portable way to read it: set and restore
    os.umask(mask)
    return mask


def file_mode(path: str | os.PathLike) -> int:
    """The permissions `open(path, "w")` leaves `path` with: its present mode, or 0o666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def new_temp(path: str | os.PathLike) -> Path:
    """A new empty hidden file next to `path` (parents created). Pair it with `commit_temp`, or use `atomic_write`,
    which does both."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path}: could not create a temporary file next to it")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform / file system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_temp(tmp: str | os.PathLike, path: str | os.PathLike, fsync: bool = True) -> Path:
    """Give the finished temporary file `tmp` the mode `open()` would give `path`, flush it to disk and rename it over
    `path` (and flush the folder entry)."""
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, file_mode(path))
    if fsync:
        _fsync_file(tmp)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], fsync: bool = True) -> Path:
    """Fill `path` atomically: `write(tmp)` writes a temporary file next to it, which then replaces `path`.

    Args:
        path: the target; its parent folders are created.
        write: called with the temporary path (an existing empty file); it may write the file by name (as
            `safetensors.save_file` or `torch.onnx.export` do) and may raise to abandon the write, in which case the
            temporary file is removed and `path` is left as it was.
        fsync: flush the file and its folder entry to disk before returning.

    Returns:
        `path`.
    """
    tmp = new_temp(path)
    try:
        write(tmp)
        return commit_temp(tmp, path, fsync=fsync)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> Path:
    """Write UTF-8 `text` to `path` atomically (see `atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)
