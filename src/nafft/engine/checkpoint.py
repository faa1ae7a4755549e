"""Checkpoint files of a run and the training state, written atomically and read without executing code.

Layout of RUN_DIR/checkpoints/:

- `iter_NNNNNNN.safetensors`: the raw weights after iteration N (7 digits), every `train.checkpoint_every`;
- `ema_NNNNNNN.safetensors`: the EMA weights at the same iteration (when `train.ema` > 0);
- `last.safetensors` / `last_ema.safetensors`: the newest of those;
- `best.safetensors`: the validated weights with the best PSNR so far (the EMA weights when EMA is on, since those
  are the ones validated for the choice; the metadata key `nafft_weights` says "raw" or "ema");
- `state_NNNNNNN.safetensors`: everything `--resume` needs: raw weights, EMA, optimizer moments, gradient scaler,
  RNG states, counters, best score and the iteration (the data position: the sampler restarts at that global batch).

Weight files are written by `nafft.models.save_model`, so `nafft.models.load_model` reads each of them, and carry
the resolved training config as JSON under `nafft_train_config`. State files hold tensors in safetensors and
everything else as JSON in the safetensors metadata; nothing is unpickled. Every file is written by
`nafft.fileio.atomic_write` (a temporary name in the same folder, flushed to disk, renamed over the target), so a
crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nafft.errors import CheckpointError
from nafft.fileio import atomic_write
from nafft.models.checkpoint import STATE_KEY

_STATE_RE = re.compile(r"^state_(\d{7,})\.safetensors$")
_ITER_RE = re.compile(r"^(iter|ema)_(\d{7,})\.safetensors$")


def iter_name(iteration: int, kind: str = "iter") -> str:
    """`iter_0001000.safetensors` (kind "iter", "ema" or "state")."""
    return f"{kind}_{iteration:07d}.safetensors"


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files left by a process killed mid-write."""
    for p in folder.glob(".*.tmp*"):
        p.unlink(missing_ok=True)


# --- training state: nested Python structures with tensors <-> (JSON, {key: tensor}) ---------------------------


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = key or "value"
        tensors[name] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}.{k}" if key else k, tensors) for k, v in obj.items()}
        return {"__map__": [[k, _encode(v, f"{key}.{k}", tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at '{key}' in a training state")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__map__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__map__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a training state (nested dicts/lists/tuples of tensors, arrays and plain values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps(_encode(state, "", tensors))
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={STATE_KEY: meta}))


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a state written by `save_state`.

    Raises:
        CheckpointError: naming the file when it is not a nafft training state.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = (f.metadata() or {}).get(STATE_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error type for corrupt headers
        raise CheckpointError(f"{path}: cannot read training state ({exc})") from None
    if meta is None:
        raise CheckpointError(f"{path}: not a nafft training state (no '{STATE_KEY}' metadata)")
    try:
        return _decode(json.loads(meta), tensors)
    except (json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt training state ({exc})") from None


def state_files(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """`(iteration, path)` of every state file in `folder`, sorted by iteration number."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STATE_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_state(folder: str | os.PathLike) -> tuple[int, Path] | None:
    """The state with the highest iteration number (by number, not by name or by file time), or None."""
    files = state_files(folder)
    return files[-1] if files else None


def weight_files(folder: str | os.PathLike, kind: str = "iter") -> list[tuple[int, Path]]:
    """`(iteration, path)` of every `iter_*` (or `ema_*`) weight file, sorted by iteration number."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _ITER_RE.match(p.name)
        if m and m.group(1) == kind:
            found.append((int(m.group(2)), p))
    return sorted(found)


def prune(folder: str | os.PathLike, keep_weights: int, keep_states: int) -> None:
    """Delete all but the newest `keep_weights` iter/ema files (0 = keep all) and `keep_states` state files."""
    if keep_weights > 0:
        for kind in ("iter", "ema"):
            for _, p in weight_files(folder, kind)[:-keep_weights]:
                p.unlink(missing_ok=True)
    if keep_states > 0:
        for _, p in state_files(folder)[:-keep_states]:
            p.unlink(missing_ok=True)
