"""The pieces of the ablation runner (and so of the demo): synthetic data sets, a recipe turned into a run of a job,
the paired design's shared initialisation, training a run and evaluating its checkpoint on a held-out set (with its
wall and CPU time), its validation curve, comparison panels."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nafft.atomic_files import atomic_write_text
from nafft.engine.config import find_config  # noqa: F401 (the recipes' lookup, imported from here by scripts)
from nafft.errors import UserError

log = logging.getLogger(__name__)


def recipe_config(path: Path, train: Sequence[Path], val: Path | None, iterations: int, seed: int,
                  overrides: Sequence[str] = (), checkpoints: int = 2, init: Path | None = None):
    """A recipe file turned into a run of this job: its data folders, budget and seed; validation 10 times and
    `checkpoints` checkpoints over the run, warm-up at most a tenth of it, no TensorBoard, the starting weights
    `init` (`model.init`) when given; then `overrides`."""
    from nafft.engine.config import build_config, read_config_file

    mapping = read_config_file(path)
    if init is not None:
        model = mapping.get("model")
        mapping["model"] = {**({"preset": model} if isinstance(model, str) else model or {}), "init": str(init)}
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
    one when those are missing), or None, with a warning naming what is skipped, when scikit-image is not
    installed."""
    from nafft.data.synth import skimage_photo_paths

    photos = sorted(skimage_photo_paths())
    if len(photos) < 4:
        log.warning("scikit-image is not installed (pip install 'nafft[skimage]'): its photographs are skipped (%s "
                    "held out for testing, the others for training); dead-leaves images only",
                    ", ".join(TEST_PHOTOS))
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


def make_datasets(root: str | Path, plan: SynthPlan, use_photos: bool = True, workers: int | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> DataSets:
    """Synthesise the training, validation and held-out test pair folders under `root` (resumable; `workers`
    processes, default one per CPU: the pairs do not depend on it)."""
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
                         workers=workers or os.cpu_count() or 1, progress=tick)
    made = {folder for folder, _, count, _, _ in jobs if count > 0}
    train = tuple(root / f for f in ("train_leaves", "train_photos") if f in made)
    test = tuple(root / f for f in ("test_leaves", "test_photos") if f in made)
    if not train or not test or "val" not in made:
        raise UserError("the synthetic data plan needs training, validation and test pairs (counts must be > 0)")
    return DataSets(train=train, val=root / "val", test=test, photos=photos is not None)


# --------------------------------------------------------------------------------------- shared initialisation


def shared_init_state(config, seed: int) -> dict[str, torch.Tensor]:
    """The common starting point of every run of one seed in a paired ablation: `config`'s model (the reference)
    initialised exactly as the trainer initialises it (`torch.manual_seed(seed)`, then `build_model`), plus the same
    3x3 kernels under DO-Conv's parameter names.

    A variant started from it (`model.init`, `nafft.models.load_matching`) takes every tensor whose name and shape
    match and keeps its own seeded initialisation for the rest (ECA's channel convolution, FFT blocks). DO-Conv's
    `W` (out, in/groups, M*N) with D = 0 composes to the plain kernel `W.reshape(out, in/groups, M, N)`, and both
    are drawn from the same distribution (same fan-in), so the reference's kernel `weight` reshaped is a fair
    starting `W`: a DO-Conv variant then starts as the same function as the reference wherever the rest matches.
    A `W` of a DO-Conv reference gives plain variants their `weight` the same way.
    """
    from nafft.models import build_model

    torch.manual_seed(seed)
    state = {k: v.detach().clone().contiguous() for k, v in build_model(config.model_config()).state_dict().items()}
    aliases = {}
    for key, value in state.items():
        module, _, name = key.rpartition(".")
        if name == "weight" and value.dim() == 4 and value.shape[-1] * value.shape[-2] > 1:
            aliases[f"{module}.W"] = value.reshape(*value.shape[:2], -1).clone()  # (out, in/groups, M*N)
        elif name == "W" and value.dim() == 3 and f"{module}.D" in state:
            side = math.isqrt(value.shape[-1])
            d = state[f"{module}.D"]  # (in, M*N, D_mul); D = 0 at initialisation
            if side * side == d.shape[1] == value.shape[-1]:
                aliases[f"{module}.weight"] = value.reshape(*value.shape[:2], side, side).clone()
    return state | {k: v for k, v in aliases.items() if k not in state}


def write_shared_init(config, seed: int, path: Path) -> Path:
    """`shared_init_state` written to `path` (safetensors; kept when it exists: it is a pure function of the
    reference's architecture and the seed, and runs started from it must keep finding it)."""
    from safetensors.torch import save_file

    from nafft.atomic_files import atomic_write

    path = Path(path)
    if not path.is_file():
        state = shared_init_state(config, seed)
        meta = {"nafft_shared_init_seed": str(seed), "nafft_shared_init_model": json.dumps(config.model)}
        atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    return path


def shared_fraction(config, init: Path) -> float:
    """The share of `config`'s trainable parameters (elements) that start from the shared initialisation `init`."""
    from nafft.models import build_model
    from nafft.models.checkpoint import read_state_dict

    with torch.device("meta"):
        model = build_model(config.model_config())
    state, _ = read_state_dict(init)
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    taken = sum(p.numel() for k, p in params.items() if k in state and state[k].shape == p.shape)
    return taken / total if total else 0.0


# ------------------------------------------------------------------------------------------ train + eval


def calibrate_step_seconds(config, steps: int = 3) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of `config`'s model at its batch and crop
    size, on random data; used to turn a time budget into an iteration count."""
    return time_training_steps(config, steps)[0]


def training_device(config) -> torch.device:
    """The device a run of `config` trains on (`train.device`; "auto": CUDA when available)."""
    from nafft.inference.opened_model import resolve_device

    return resolve_device(config.train.device)


def time_training_steps(config, steps: int = 3) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one training step of `config` at its batch and crop size on random data: the
    trainer's own step (`Trainer.for_timing`: forward under its precision, the config's loss, backward, gradient
    clipping, AdamW, EMA) on its training device; the first step warms up allocators and kernels and is not counted.
    CPU seconds are this process's, over all its threads."""
    import statistics

    from nafft.engine import distributed as dist_utils
    from nafft.engine.trainer import Trainer

    trainer = Trainer.for_timing(config)
    try:
        device, size = trainer.device, config.data.patch_size
        torch.manual_seed(0)
        batch = {k: torch.rand(trainer.per_rank_batch, 3, size, size) for k in ("blur", "sharp")}
        blur, sharp = trainer.place(batch)
        trainer.net.train()
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        walls, cpus = [], []
        for i in range(steps + 1):
            sync()
            start, cpu = time.perf_counter(), time.process_time()
            trainer.step(blur, sharp)
            sync()
            if i:
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
    finally:
        dist_utils.teardown(trainer.dist)
    return statistics.median(walls), statistics.median(cpus)


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


@dataclass
class RunResult:
    """One trained and evaluated run."""

    name: str
    seed: int
    run_dir: Path
    checkpoint: Path
    iterations: int
    params: int
    macs: int
    summary: dict[str, Any]  # nafft eval's summary.json
    val_records: list[dict[str, Any]]
    train_seconds: float | None
    train_cpu_seconds: float | None = None

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(iteration, validation PSNR) pairs."""
        return [(int(r["iter"]), float(r["psnr"])) for r in self.val_records]

    def record(self) -> dict[str, Any]:
        """The run in a job's summary (paths relative to the working directory when inside it)."""
        s = self.summary
        return {"seed": self.seed, "run_dir": _rel(self.run_dir), "checkpoint": _rel(self.checkpoint),
                "iterations": self.iterations, "psnr": s["psnr"], "ssim": s["ssim"], "ssim3d": s["ssim3d"],
                "improved_images": s["improved_images"], "ms_per_image": s["seconds_per_image"] * 1000,
                "train_seconds": self.train_seconds, "train_cpu_seconds": self.train_cpu_seconds,
                "eval_cpu_seconds": s.get("cpu_seconds")}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def evaluate_run(checkpoint: Path, test: Sequence[Path], out_dir: Path, panels: int = 4,
                 save_images: bool = True) -> dict[str, Any]:
    """`nafft eval` of one checkpoint (TLC as the checkpoint's training crops imply, whole images) on the held-out
    folders; returns its summary."""
    from nafft.engine.evaluate import evaluate_model
    from nafft.inference.opened_model import open_model

    return evaluate_model(open_model(checkpoint), list(test), out_dir, tile=0, save_images=save_images,
                          panels=panels).summary


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (data-loader workers), user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class _TrainTime:
    """Forwards the trainer's hooks to `inner` and keeps run_dir/train_seconds.json: the wall and CPU time of training
    up to the newest checkpoint, summed over the segments of an interrupted and resumed run (the work after the last
    checkpoint of a killed segment is done again, so it does not count)."""

    def __init__(self, inner, path: Path):
        self.inner, self.path = inner, path
        before = _read_json(path)
        self.before = float(before.get("seconds", 0.0))
        self.cpu_before = float(before.get("cpu_seconds", 0.0))
        self.start, self.cpu_start = time.perf_counter(), cpu_seconds()

    def on_checkpoint(self, iteration: int, state: Path) -> None:
        seconds = self.before + time.perf_counter() - self.start
        cpu = self.cpu_before + cpu_seconds() - self.cpu_start
        atomic_write_text(self.path, json.dumps({"seconds": seconds, "cpu_seconds": cpu, "iteration": iteration}))
        getattr(self.inner, "on_checkpoint", lambda *a: None)(iteration, state)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_train_seconds(path: Path, key: str = "seconds") -> float | None:
    """The training time recorded in a run's train_seconds.json: `seconds` (wall) or `cpu_seconds` (None for runs
    recorded before CPU time was)."""
    try:
        return float(_read_json(path)[key])
    except (KeyError, ValueError, TypeError):
        return None


def train_and_evaluate(name: str, config, run_dir: Path, test: Sequence[Path], panels: int = 4,
                       callback=None) -> RunResult:
    """Train `config` in `run_dir` (continuing an interrupted run, a finished one is left as it is), then evaluate
    `last.safetensors` on `test` into run_dir/eval (skipped when that evaluation already exists)."""
    from nafft.engine.callbacks import LoggingCallback
    from nafft.engine.run_checkpoints import latest_state
    from nafft.engine.trainer import train
    from nafft.models import build_model, reparameterize
    from nafft.profiling import count_macs, count_parameters

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoints" / "last.safetensors"
    timing = run_dir / "train_seconds.json"
    summary = _finished_summary(run_dir / "eval", checkpoint, config.train.iterations)
    if summary is None:
        done = latest_state(run_dir / "checkpoints")
        if done is None or done[0] < config.train.iterations:
            train(config, run_dir, resume=True, callback=_TrainTime(callback or LoggingCallback(), timing))
        cpu = cpu_seconds()
        summary = evaluate_run(checkpoint, test, run_dir / "eval", panels=panels)
        summary["iteration"] = config.train.iterations
        summary["cpu_seconds"] = cpu_seconds() - cpu
        atomic_write_text(run_dir / "eval" / "summary.json", json.dumps(summary, indent=2) + "\n")
    model = build_model(config.model_config())
    params = count_parameters(model)  # while training: DO-Conv unfolded
    macs = count_macs(reparameterize(model).eval(), (256, 256))
    return RunResult(name, config.train.seed, run_dir, checkpoint, config.train.iterations, params, macs, summary,
                     validation_records(run_dir), read_train_seconds(timing),
                     read_train_seconds(timing, "cpu_seconds"))


def _finished_summary(eval_dir: Path, checkpoint: Path, iterations: int) -> dict[str, Any] | None:
    path = eval_dir / "summary.json"
    if not (path.is_file() and checkpoint.is_file()):
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return summary if summary.get("iteration") == iterations else None


def comparison_panels(runs: Sequence[RunResult], test: Sequence[Path], folder: Path, count: int = 4,
                      source: str | None = None) -> list[Path]:
    """blur | each run's prediction | sharp for `count` test images spread over the set (from the runs' saved
    evaluation images, RUN_DIR/eval/images; a run is anything with a `name` and a `run_dir`), one PNG each in
    `folder`. `source`: only images of the test folder of that name, when it has any."""
    from nafft.data.io import read_image, write_image
    from nafft.data.pair_folders import root_prefixes
    from nafft.engine.evaluate import labelled_grid
    from nafft.metrics import to_uint8

    images = runs[0].run_dir / "eval" / "images"
    names = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png")) if images.is_dir() else []
    if source and any(n.startswith(f"{source}/") for n in names):
        names = [n for n in names if n.startswith(f"{source}/")]
    written = []
    roots = dict(zip(root_prefixes(test), test))  # the evaluation named each image "<prefix>/<name>"
    for image_name in names[:: max(1, len(names) // count)][:count] if count > 0 else []:
        prefix = next(p for p in roots if image_name.startswith(f"{p}/"))
        root, file_name = roots[prefix], image_name[len(prefix) + 1 :]
        paths = [root / "blur" / file_name] + [r.run_dir / "eval" / "images" / image_name for r in runs]
        paths.append(root / "sharp" / file_name)
        cells = [to_uint8(read_image(p).rgb) for p in paths]
        target = folder / (image_name.rsplit(".", 1)[0].replace("/", "__") + ".png")
        write_image(target, labelled_grid(cells, ["blur"] + [r.name for r in runs] + ["sharp"]))
        written.append(target)
    return written
