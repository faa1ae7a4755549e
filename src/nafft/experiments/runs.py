"""Pieces shared by the demo and the ablation runner: synthetic data sets, locating the recipe files, training a
run and evaluating its checkpoint on a held-out set, and reading a run's validation curve back."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nafft.engine.config import find_config  # noqa: F401 (the recipes' lookup, imported from here by scripts)
from nafft.errors import UserError
from nafft.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


def recipe_config(path: Path, train: Sequence[Path], val: Path | None, iterations: int, seed: int,
                  overrides: Sequence[str] = (), checkpoints: int = 2):
    """A recipe file turned into a run of this job: its data folders, budget and seed; validation 10 times and
    `checkpoints` checkpoints over the run, warm-up at most a tenth of it, no TensorBoard; then `overrides`."""
    from nafft.engine.config import build_config, read_config_file

    mapping = read_config_file(path)
    mapping.setdefault("data", {}).update(train=[str(p) for p in train], val=None if val is None else str(val))
    mapping.setdefault("train", {}).update(
        iterations=iterations,
        seed=seed,
        val_every=max(1, iterations // 10),
        checkpoint_every=max(1, iterations // checkpoints),
        log_every=max(1, iterations // 50),
        tensorboard=False,
    )
    schedule = mapping.setdefault("schedule", {})
    schedule["warmup_iters"] = min(int(schedule.get("warmup_iters", 0)), iterations // 10)
    return build_config(mapping, overrides=overrides, source=str(path))


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SynthPlan:
    """What synthetic data a job makes (all zero-download).

    Attributes:
        train_leaves: dead-leaves training pairs.
        train_photos: training pairs cut from the scikit-image photographs set aside for training.
        val_pairs: dead-leaves pairs for the validation curve during training.
        test_leaves: held-out dead-leaves test pairs (another seed).
        test_photos: held-out test pairs from photographs never used in training.
        train_size: side of the training images.
        test_size: side of the validation and test images.
        strength: motion length multiplier of `nafft synth` (1 = its default).
        seed: base seed; every set derives its own.
    """

    train_leaves: int = 240
    train_photos: int = 120
    val_pairs: int = 6
    test_leaves: int = 12
    test_photos: int = 12
    train_size: int = 128
    test_size: int = 256
    strength: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class DataSets:
    train: tuple[Path, ...]
    val: Path
    test: tuple[Path, ...]
    photos: bool  # whether scikit-image photographs were available


# Held out for testing: natural colour photographs, the kind of picture people want sharp. The grey scientific
# and texture images (moon, coins, brick, ...) and the other photographs are used for training only.
TEST_PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg")


def split_photos(root: Path) -> tuple[Path, Path] | None:
    """Copy scikit-image's photographs into root/photos_train and root/photos_test (`TEST_PHOTOS`, or every fourth
    one when those are missing), or None when scikit-image is not installed."""
    from nafft.data.synth import skimage_photo_paths

    photos = sorted(skimage_photo_paths())
    if len(photos) < 4:
        return None
    held_out = {p.name for p in photos} & set(TEST_PHOTOS)
    if len(held_out) < len(TEST_PHOTOS):
        held_out = {p.name for p in photos[1::4]}
    train_dir, test_dir = root / "photos_train", root / "photos_test"
    for photo in photos:
        target = (test_dir if photo.name in held_out else train_dir) / photo.name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
    return train_dir, test_dir


def make_datasets(root: str | Path, plan: SynthPlan, use_photos: bool = True, workers: int = 2,
                  progress: Callable[[str, int, int], None] | None = None) -> DataSets:
    """Synthesise the training, validation and held-out test pair folders under `root` (resumable)."""
    from nafft.data.synth import synthesize_pairs

    root = Path(root)
    photos = split_photos(root) if use_photos else None
    jobs: list[tuple[str, str, int, int, int]] = [  # (folder, source, count, size, seed)
        ("train_leaves", "deadleaves", plan.train_leaves, plan.train_size, plan.seed),
        ("val", "deadleaves", plan.val_pairs, plan.test_size, plan.seed + 1),
        ("test_leaves", "deadleaves", plan.test_leaves, plan.test_size, plan.seed + 2),
    ]
    if photos is not None:
        jobs += [
            ("train_photos", str(photos[0]), plan.train_photos, plan.train_size, plan.seed + 3),
            ("test_photos", str(photos[1]), plan.test_photos, plan.test_size, plan.seed + 4),
        ]
    for folder, source, count, size, seed in jobs:
        if count <= 0:
            continue
        done = 0

        def tick(_result, folder=folder, count=count) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(folder, done, count)

        synthesize_pairs(root / folder, source=source, count=count, size=size, seed=seed, strength=plan.strength,
                         workers=workers, progress=tick)
    made = {folder for folder, _, count, _, _ in jobs if count > 0}
    train = tuple(root / f for f in ("train_leaves", "train_photos") if f in made)
    test = tuple(root / f for f in ("test_leaves", "test_photos") if f in made)
    if not train or not test or "val" not in made:
        raise UserError("the synthetic data plan needs training, validation and test pairs (counts must be > 0)")
    return DataSets(train=train, val=root / "val", test=test, photos=photos is not None)


# ------------------------------------------------------------------------------------------ train + eval


def calibrate_step_seconds(config, steps: int = 3) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of `config`'s model at its batch and crop
    size, on random data; used to turn a time budget into an iteration count."""
    import statistics
    import time

    from nafft.models import build_model

    torch.manual_seed(0)
    model = build_model(config.model)
    batch, size = config.data.batch_size, config.data.patch_size
    blur, sharp = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
        blur, sharp = (t.contiguous(memory_format=torch.channels_last) for t in (blur, sharp))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        (model(blur) - sharp).abs().mean().backward()
        opt.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def validation_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The validation records of a run's metrics.jsonl, one per iteration (the last one written), in order."""
    path = Path(run_dir) / "metrics.jsonl"
    records: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "val" and isinstance(record.get("psnr"), (int, float)):
                records[int(record["iter"])] = record
    return [records[i] for i in sorted(records)]


def validation_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """(iteration, validation PSNR) pairs of a run."""
    return [(int(r["iter"]), float(r["psnr"])) for r in validation_records(run_dir)]


@dataclass
class RunResult:
    """One trained and evaluated run."""

    name: str
    run_dir: Path
    checkpoint: Path
    iterations: int
    params: int
    macs: int
    summary: dict[str, Any]  # nafft eval's summary.json
    curve: list[tuple[int, float]]
    train_seconds: float | None

    @property
    def psnr(self) -> float:
        return self.summary["psnr"]

    @property
    def ssim(self) -> float:
        return self.summary["ssim"]


def pairs_of(folders: Sequence[Path]):
    """Every pair of the given folders (names prefixed with the folder name so they stay unique)."""
    from nafft.data.pairs import Pair, find_pairs

    pairs = []
    for folder in folders:
        pairs += [Pair(f"{Path(folder).name}/{p.name}", p.blur, p.sharp) for p in find_pairs(folder)]
    return pairs


def evaluate_run(checkpoint: Path, test: Sequence[Path], out_dir: Path, panels: int = 4,
                 save_images: bool = True) -> dict[str, Any]:
    """`nafft eval` of one checkpoint (TLC as the checkpoint's training crops imply, channels_last on CPU) on the
    held-out folders; returns its summary."""
    from nafft.engine.evaluate import evaluate
    from nafft.inference.loading import load_for_inference
    from nafft.inference.predict import Predictor

    loaded = load_for_inference(checkpoint, tlc=True)
    predictor = Predictor(loaded.model, device="auto", tile=0)
    predictor_settings = {
        "checkpoint": str(checkpoint),
        "data": [str(t) for t in test],
        "tlc": loaded.tlc,
        "tlc_train_size": loaded.train_size,
        "device": str(predictor.device),
    }
    result = evaluate(predictor, pairs_of(test), out_dir, save_images=save_images, panels=panels,
                      settings=predictor_settings)
    return result.summary


def train_and_evaluate(name: str, config, run_dir: Path, test: Sequence[Path], panels: int = 4,
                       callback=None) -> RunResult:
    """Train `config` in `run_dir` (continuing an interrupted run, a finished one is left as it is), then evaluate
    `last.safetensors` on `test` into run_dir/eval (skipped when that evaluation already exists)."""
    import time

    from nafft.engine.trainer import train
    from nafft.models import build_model, reparameterize
    from nafft.profiling import count_macs, count_parameters

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoints" / "last.safetensors"
    eval_dir = run_dir / "eval"
    timing_file = run_dir / "train_seconds.json"
    summary = _finished_summary(eval_dir, checkpoint, config.train.iterations)
    if summary is None:
        start = time.perf_counter()
        train(config, run_dir, resume=True, callback=callback)
        seconds = time.perf_counter() - start
        if not timing_file.is_file():  # the first, uninterrupted training time only
            atomic_write_bytes(timing_file, json.dumps({"seconds": seconds}).encode())
        summary = evaluate_run(checkpoint, test, eval_dir, panels=panels)
        summary["iteration"] = config.train.iterations
        atomic_write_bytes(eval_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    model = build_model(config.model)
    params = count_parameters(model)
    macs = count_macs(reparameterize(model).eval(), (256, 256))
    seconds = json.loads(timing_file.read_text())["seconds"] if timing_file.is_file() else None
    return RunResult(name, run_dir, checkpoint, config.train.iterations, params, macs, summary,
                     validation_curve(run_dir), seconds)


def _finished_summary(eval_dir: Path, checkpoint: Path, iterations: int) -> dict[str, Any] | None:
    path = eval_dir / "summary.json"
    if not (path.is_file() and checkpoint.is_file()):
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return summary if summary.get("iteration") == iterations else None
