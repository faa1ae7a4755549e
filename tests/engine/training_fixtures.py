"""Tiny pair folders, tiny run configs and fixtures for the training-engine tests (plain helpers, not a
conftest, so that other tests in this folder are unaffected)."""

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from nafft.engine.config import build_config

TINY_MODEL = {"width": 8, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}


def write_pairs(root: Path, count: int, height: int, width: int, seed: int) -> Path:
    """A flat pair folder: smooth random colour images (sharp) and their box-blurred copies (blur)."""
    rng = np.random.default_rng(seed)
    for sub in ("blur", "sharp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = (rng.random((height // 4 + 1, width // 4 + 1, 3)) * 255).astype(np.uint8)
        sharp = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
        sharp.save(root / "sharp" / f"{i:03d}.png")
        sharp.filter(ImageFilter.BoxBlur(2)).save(root / "blur" / f"{i:03d}.png")
    return root


def make_pair_data(tmp_path_factory) -> dict[str, Path]:
    """`train`: 8 pairs of 40x48; `val`: 2 pairs of odd size 30x37."""
    base = tmp_path_factory.mktemp("pairs")
    return {"train": write_pairs(base / "train", 8, 40, 48, 0), "val": write_pairs(base / "val", 2, 30, 37, 1)}


def tiny_mapping(pair_data, **sections) -> dict:
    """A run mapping: tiny model, 32x32 crops, batch 4, no workers; `sections` update it section by section."""
    mapping = {
        "model": dict(TINY_MODEL),
        "data": {"train": str(pair_data["train"]), "val": str(pair_data["val"]), "patch_size": 32,
                 "batch_size": 4, "num_workers": 0},
        "loss": {"psnr": 1.0},
        "optim": {"lr": 1e-3},
        "schedule": {"eta_min": 1e-6},
        "train": {"iterations": 6, "checkpoint_every": 3, "val_every": 0, "log_every": 1, "tensorboard": False},
    }
    for name, values in sections.items():
        mapping[name] = {**mapping.get(name, {}), **values}
    return mapping


def tiny_config(pair_data, overrides=(), **sections):
    return build_config(tiny_mapping(pair_data, **sections), overrides)


@contextlib.contextmanager
def one_thread():
    """Tiny models gain nothing from a second thread, and OpenMP's spinning barriers slow them down many times
    when the shared CPU is busy; subprocesses get OMP_NUM_THREADS=1 for the same reason."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
