"""Checkpoint files of a run and the training state, written atomically and read without executing code.

Layout of RUN_DIR/checkpoints/:

- `iter_NNNNNNN.safetensors`: the raw weights after iteration N (7 digits), every `train.checkpoint_every`;
- `ema_NNNNNNN.safetensors`: the EMA weights at the same iteration (when `train.ema` > 0);
- `last.safetensors` / `last_ema.safetensors`: the newest of those;
- `best.safetensors`: the validated weights with the best PSNR so far (the EMA weights when EMA is on, since those
  are the ones validated for the choice; the metadata key `nafft_weights` says "raw" or "ema");
- `state_NNNNNNN.safetensors`: everything `--resume` needs: raw weights, EMA, optimizer moments, gradient scaler,
  RNG states, counters, best score and the iteration (the data position: the sampler restarts at that global batch).

`CheckpointSaver` writes all of them. Weight files are written by `nafft.models.save_model`, so
`nafft.models.load_model` reads each of them, and carry the resolved training config as JSON under
`nafft_train_config`, the iteration under `nafft_iteration` and "raw" or "ema" under `nafft_weights`. State files hold tensors in safetensors and
everything else as JSON in the safetensors metadata; nothing is unpickled. Every file is written by
`nafft.atomic_files.atomic_write` (a temporary name in the same folder, flushed to disk, renamed over the target), so a
crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from nafft.atomic_files import atomic_write
from nafft.errors import CheckpointError
from nafft.models.checkpoint import ITERATION_KEY, STATE_KEY, TRAIN_CONFIG_KEY, WEIGHTS_KEY

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


def rng_state() -> dict[str, Any]:
    """The torch, numpy, Python (and CUDA) random generator states, as a training state stores them."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    np.random.set_state(state["numpy"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


class CheckpointSaver:
    """Owns RUN_DIR/checkpoints/ (timm's `CheckpointSaver` idea): every file in the layout above, and `best`.

    Args:
        folder: the checkpoints folder (created; temporary files of a killed writer are removed).
        train_config_json: the resolved training config, stored in every weight file.
        keep_weights: iter/ema files kept (the newest; 0 keeps all).
        keep_states: state files kept (the newest; 0 keeps all).
        writes: False on the processes that only follow along (DDP ranks > 0): they track `best`, write nothing.
    """

    def __init__(self, folder: str | os.PathLike, train_config_json: str, keep_weights: int = 0,
                 keep_states: int = 0, writes: bool = True):
        self.folder = Path(folder)
        self.train_config_json = train_config_json
        self.keep_weights, self.keep_states = keep_weights, keep_states
        self.writes = writes
        self.best: dict[str, Any] | None = None  # {"iter", "psnr", "ssim", "weights"}, kept in the training state
        if writes:
            self.folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.folder)

    def metadata(self, iteration: int, weights: str, **extra: Any) -> dict[str, str]:
        meta = {TRAIN_CONFIG_KEY: self.train_config_json, ITERATION_KEY: str(iteration), WEIGHTS_KEY: weights}
        return meta | {k: str(v) for k, v in extra.items()}

    def _weights(self, model: nn.Module, name: str, last: str, iteration: int, weights: str, **extra: Any) -> None:
        from nafft.models import save_model

        path = save_model(model, self.folder / name, metadata=self.metadata(iteration, weights, **extra))
        atomic_write(self.folder / last, lambda tmp: shutil.copyfile(path, tmp))

    def save(self, iteration: int, state: Mapping[str, Any], model: nn.Module, ema=None) -> Path | None:
        """The checkpoint of `iteration`: raw weights (and `ema.module`'s) with their last copies, the training
        state, then pruning. Returns the state file (None when this process does not write)."""
        if not self.writes:
            return None
        self._weights(model, iter_name(iteration), "last.safetensors", iteration, "raw")
        if ema is not None:
            self._weights(ema.module, iter_name(iteration, "ema"), "last_ema.safetensors", iteration, "ema",
                          nafft_ema_decay=ema.decay)
        path = save_state(self.folder / iter_name(iteration, "state"), state)
        prune(self.folder, self.keep_weights, self.keep_states)
        return path

    def validated(self, iteration: int, model: nn.Module, weights: str, psnr: float, ssim: float) -> bool:
        """Record a validation of `model` ("raw" or "ema" weights); when its PSNR beats the best so far it becomes
        `best` and best.safetensors. Returns whether it did."""
        if self.best is not None and not psnr > self.best["psnr"]:
            return False
        self.best = {"iter": iteration, "psnr": psnr, "ssim": ssim, "weights": weights}
        if self.writes:
            from nafft.models import save_model

            save_model(model, self.folder / "best.safetensors",
                       metadata=self.metadata(iteration, weights, nafft_val_psnr=f"{psnr:.4f}",
                                              nafft_val_ssim=f"{ssim:.5f}"))
        return True
