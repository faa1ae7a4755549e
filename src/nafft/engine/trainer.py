"""The training loop: iteration-based AdamW with a per-iteration schedule, mixed precision, EMA, exact resume and
DistributedDataParallel.

One iteration is one optimizer update on one global batch of `data.batch_size` random crops. Sample numbers are
handed out by `SampleSampler`: iteration i uses samples `i * batch_size ... (i + 1) * batch_size - 1`, each process
takes its slice, and every crop and flip is a function of (seed, sample number). So the batches do not depend on the
number of processes or loader workers, and resuming at iteration i only needs i.

Under DDP every process trains on `batch_size / world_size` samples (split again into `train.accumulate`
micro-batches), gradients are averaged, and rank 0 alone writes logs and checkpoints while the others wait at a
barrier. Validation is split across processes (image j goes to rank j mod world_size) and the per-image sums are
reduced, so no process idles at a barrier through a long validation and a single process validates everything.

A step whose loss or gradient norm is not finite is skipped (no update, no EMA update) and counted; after
`train.max_nonfinite` in a row the run stops with `TrainingDiverged`. Under fp16 the gradient scaler skips steps
with overflowing gradients itself (counted as `amp_overflows`), as usual.

Outputs in RUN_DIR: config.yaml (the resolved config), metrics.jsonl (one JSON object per log step and per
validation), checkpoints/ (see `nafft.engine.checkpoint`), tb/ (TensorBoard, when installed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nafft.config import dump_yaml, to_dict
from nafft.engine import checkpoint as ckpt
from nafft.engine import distributed as dist_utils
from nafft.engine.config import TrainConfig
from nafft.engine.ema import EMA
from nafft.engine.schedule import Schedule
from nafft.errors import CheckpointError, ConfigError, UserError
from nafft.losses import CombinedLoss

log = logging.getLogger(__name__)

CONFIG_KEY = "nafft_train_config"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(UserError):
    """Too many non-finite losses in a row."""


class Callback:
    """Hooks called on rank 0 only; the CLI's progress bar is one. Override what you need."""

    def on_start(self, start: int, total: int, run_dir: Path) -> None:
        """Before the first step; `start` > 0 after a resume."""

    def on_step(self, iteration: int, stats: dict[str, float]) -> None:
        """After update `iteration` (1-based count of finished iterations) and its log/validation/checkpoint.

        `stats`: `loss` (this process's total loss), `lr`, `skipped` (1.0 when the step was skipped).
        """

    def on_log(self, record: dict[str, Any]) -> None:
        """A training record as written to metrics.jsonl."""

    def on_validation_progress(self, done: int, total: int) -> None:
        """During a validation: `done` of `total` image passes finished (0 at the start, `total` at the end)."""

    def on_validation(self, record: dict[str, Any]) -> None:
        """A validation record as written to metrics.jsonl."""

    def on_checkpoint(self, iteration: int, path: Path) -> None:
        """After the state of `iteration` was written to `path`."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """After the last step."""


class LoggingCallback(Callback):
    """The default when `train()` is given no callback: progress as log lines (INFO, logger `nafft.engine.trainer`)."""

    def on_start(self, start: int, total: int, run_dir: Path) -> None:
        log.info("training %s: iteration %d of %d", run_dir, start, total)

    def on_log(self, record: dict[str, Any]) -> None:
        speed = record.get("it_per_s")
        log.info(
            "iteration %d: loss %.4f, lr %.3g%s", record["iter"], record.get("loss", math.nan), record["lr"],
            f", {speed:.2f} it/s" if speed else "",
        )  # fmt: skip

    def on_validation_progress(self, done: int, total: int) -> None:
        if done == 0:
            log.info("validating (%d image passes)", total)

    def on_end(self, summary: dict[str, Any]) -> None:
        log.info("finished at iteration %d in %s", summary["iteration"], summary["run_dir"])


@contextlib.contextmanager
def visible_logging():
    """While a caller that configured no logging at all trains from Python, show nafft's INFO lines on stderr.

    The `nafft` command and applications that set up logging keep full control: nothing is added for them.
    """
    package = logging.getLogger("nafft")
    if logging.getLogger().handlers or package.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = package.level
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    np.random.set_state(state["numpy"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


def _config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(dict.fromkeys([*old, *new]))
        return [d for k in keys for d in _config_diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)]
    return [] if old == new else [prefix]


class Trainer:
    """One training run in `run_dir`; `fit()` runs it to `train.iterations`.

    Args:
        config: the validated run config.
        run_dir: the output folder (created).
        resume: continue from the newest training state in run_dir/checkpoints (a fresh start when there is
            none); without it a run_dir that already holds checkpoints is refused, nothing is overwritten.
        callback: rank-0 hooks (progress bar, tests).
    """

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, callback=None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.callback = callback or Callback()
        loop = config.train
        self.dist, self.device = dist_utils.setup(loop.device)
        try:
            self._check_data_config()
            self.config_json = config.to_json()
            existing = ckpt.latest_state(self.ckpt_dir)
            if existing is not None and not resume:
                raise UserError(
                    f"{self.run_dir}: already holds a run (checkpoints up to iteration {existing[0]}); pass --resume "
                    f"to continue it or choose another --out"
                )
            self._build(existing if resume else None)
        except BaseException:
            dist_utils.teardown(self.dist)
            raise

    # ----------------------------------------------------------------------------------------------- set-up
    def _check_data_config(self) -> None:
        data, loop = self.config.data, self.config.train
        if not data.train:
            raise ConfigError("data.train: no training folder given (set data.train=DIR in the config or --set)")
        world = self.dist.world_size
        if data.batch_size % (world * loop.accumulate):
            raise ConfigError(
                f"data.batch_size ({data.batch_size}) is the global batch and must be divisible by the number of "
                f"processes ({world}) times train.accumulate ({loop.accumulate})"
            )

    def _build(self, resume_from: tuple[int, Path] | None) -> None:
        cfg, loop = self.config, self.config.train
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(loop.seed)
        np.random.seed(loop.seed % 2**32)
        random.seed(loop.seed)

        from nafft.models import build_model

        model = build_model(cfg.model_config()).to(self.device)
        if loop.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.net = model
        self.ema = EMA(model, loop.ema) if loop.ema > 0 else None
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        self.amp_dtype = AMP_DTYPES.get(loop.amp)
        self.scaler = _grad_scaler(self.device, enabled=loop.amp == "fp16")
        self.schedule = Schedule.from_config(cfg)
        self.criterion = CombinedLoss.from_config(cfg.loss).to(self.device)

        self.iteration = 0
        self.nonfinite_total = 0
        self.nonfinite_run = 0
        self.amp_overflows = 0
        self.best: dict[str, Any] | None = None
        self.input_scores: tuple[float, float] | None = None
        if resume_from is not None:
            self._load_state(*resume_from)
        elif self.dist.is_main:
            log.info("starting a new run in %s", self.run_dir)

        wrapped: nn.Module = model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if loop.compile:
            wrapped = torch.compile(wrapped)
        self.model = wrapped

        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temps(self.ckpt_dir)
            ckpt.atomic_write(self.run_dir / "config.yaml", lambda tmp: dump_yaml(cfg, tmp))
            self._trim_metrics(self.iteration)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.tb = self._tensorboard() if self.dist.is_main and loop.tensorboard else None
        self._build_data()
        dist_utils.barrier(self.dist)

    def _build_data(self) -> None:
        from nafft.data.datasets import PairedEvalDataset, PairedTrainDataset

        data, loop = self.config.data, self.config.train
        self.train_set = PairedTrainDataset(list(data.train), data.patch_size, loop.seed, augment=data.augment)
        self.val_set = PairedEvalDataset(data.val) if data.val else None
        self.per_rank_batch = data.batch_size // self.dist.world_size
        self.micro_batch = self.per_rank_batch // loop.accumulate

    def _loader(self) -> Iterator[dict[str, Any]]:
        from nafft.data.datasets import SampleSampler

        data = self.config.data
        # Global batch i = sample numbers [i * batch_size, (i + 1) * batch_size); this rank takes its slice.
        sampler = SampleSampler(
            self.iteration, self.per_rank_batch, rank=self.dist.rank, world_size=self.dist.world_size
        )
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.per_rank_batch,
            sampler=sampler,
            num_workers=data.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            persistent_workers=False,
        )
        return iter(loader)

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed (pip install 'nafft[tb]'); logging to metrics.jsonl only")
            return None
        return SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=self.iteration or None)

    # ----------------------------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "iteration": self.iteration,
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "schedule": self.schedule.state_dict(),
            "rng": _rng_state(),
            "counters": {
                "nonfinite_total": self.nonfinite_total,
                "nonfinite_run": self.nonfinite_run,
                "amp_overflows": self.amp_overflows,
            },
            "best": self.best,
            "world_size": self.dist.world_size,
            "config": json.loads(self.config_json),
        }

    def _load_state(self, iteration: int, path: Path) -> None:
        state = ckpt.load_state(path)
        old_cfg = state.get("config", {})
        new_cfg = to_dict(self.config)
        if old_cfg.get("model") != new_cfg["model"]:
            raise CheckpointError(f"{path}: the model in the config differs from the run's model; cannot resume")
        changed = _config_diff(old_cfg, new_cfg)
        if changed and self.dist.is_main:
            log.warning("resuming with changed settings: %s", ", ".join(changed))
        self.net.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:
                self.ema = EMA(self.net, self.config.train.ema)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        counters = state.get("counters", {})
        self.nonfinite_total = int(counters.get("nonfinite_total", 0))
        self.nonfinite_run = int(counters.get("nonfinite_run", 0))
        self.amp_overflows = int(counters.get("amp_overflows", 0))
        self.best = state.get("best")
        self.iteration = int(state["iteration"])
        if self.iteration != iteration:
            raise CheckpointError(f"{path}: holds iteration {self.iteration}, its name says {iteration}")
        if self.dist.is_main:
            log.info("resumed from %s (iteration %d)", path, self.iteration)

    def _trim_metrics(self, iteration: int) -> None:
        """Drop metrics.jsonl lines after `iteration` (logged by a killed run past its last checkpoint)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if int(record.get("iter", 0)) <= iteration:
                kept.append(line)
        text = "".join(f"{line}\n" for line in kept)
        ckpt.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # ----------------------------------------------------------------------------------------------- writing
    def _metadata(self, weights: str, **extra: Any) -> dict[str, str]:
        meta = {CONFIG_KEY: self.config_json, "nafft_iteration": str(self.iteration), "nafft_weights": weights}
        meta.update({k: str(v) for k, v in extra.items()})
        return meta

    def _save_weights(self, model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
        from nafft.models import save_model

        save_model(model, path, metadata=metadata)  # atomic itself

    def _copy(self, src: Path, dst: Path) -> None:
        ckpt.atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))

    def _checkpoint(self) -> None:
        if self.dist.is_main:
            it = self.iteration
            raw = self.ckpt_dir / ckpt.iter_name(it)
            self._save_weights(self.net, raw, self._metadata("raw"))
            self._copy(raw, self.ckpt_dir / "last.safetensors")
            if self.ema is not None:
                ema = self.ckpt_dir / ckpt.iter_name(it, "ema")
                self._save_weights(self.ema.module, ema, self._metadata("ema", nafft_ema_decay=self.ema.decay))
                self._copy(ema, self.ckpt_dir / "last_ema.safetensors")
            state = ckpt.save_state(self.ckpt_dir / ckpt.iter_name(it, "state"), self._state())
            ckpt.prune(self.ckpt_dir, self.config.train.keep_checkpoints, self.config.train.keep_states)
            log.debug("checkpoint %s", state)
            self.callback.on_checkpoint(it, state)
        dist_utils.barrier(self.dist)

    def _write_record(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ----------------------------------------------------------------------------------------------- step
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _step(self, blur: torch.Tensor, sharp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """One update on this process's share of the batch.

        Returns:
            (loss terms vector, gradient norm, status): status "ok", "skipped" (non-finite loss or gradient: no
            update) or "overflow" (fp16 gradients overflowed: the scaler skipped the update and lowered its scale).
        """
        loop, o = self.config.train, self.config.optim
        self.optimizer.zero_grad(set_to_none=True)
        n = loop.accumulate
        terms = None
        for j in range(n):
            b = blur[j * self.micro_batch : (j + 1) * self.micro_batch]
            s = sharp[j * self.micro_batch : (j + 1) * self.micro_batch]
            last = j == n - 1
            sync = contextlib.nullcontext()
            if not last and self.ddp is not None:
                sync = self.ddp.no_sync()  # accumulate locally; all-reduce on the last micro-batch only
            with sync:
                with self._autocast():
                    pred = self.model(b)
                loss, parts = self.criterion(pred, s)
                # Backward even for a non-finite loss: under DDP every process must join the gradient all-reduce;
                # the poisoned gradients are thrown away below.
                self.scaler.scale(loss / n).backward()
            vec = torch.stack([loss.detach(), *parts.values()])
            terms = vec if terms is None else terms + vec
        terms = terms / n
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        max_norm = o.clip_grad_norm if o.clip_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
        bad = (~torch.isfinite(terms[0])).float()
        if not self.scaler.is_enabled():
            bad = torch.maximum(bad, (~torch.isfinite(grad_norm)).float())
        skipped = bool(dist_utils.all_reduce_max(bad, self.dist).item())
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()
            return terms, grad_norm.detach(), "skipped"
        if self.scaler.is_enabled():
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() < scale:  # overflowing gradients: the scaler skipped the update
                self.amp_overflows += 1
                return terms, grad_norm.detach(), "overflow"
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.net)
        return terms, grad_norm.detach(), "ok"

    # ----------------------------------------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train to `train.iterations`; returns a summary (final iteration, last validation, best, counters)."""
        loop = self.config.train
        total = loop.iterations
        names = ["loss", *(f"loss_{k}" for k in self.criterion.weights)]
        last_val: dict[str, Any] | None = None
        if self.dist.is_main:
            self.callback.on_start(self.iteration, total, self.run_dir)
        if self.iteration >= total:
            log.info("nothing to do: the run already reached iteration %d", self.iteration)
            return self._summary(last_val)
        batches = self._loader()
        window = torch.zeros(len(names) + 2, device=self.device)  # terms..., grad_norm, steps
        window_start = time.perf_counter()
        window_iters = 0
        self.net.train()
        try:
            while self.iteration < total:
                batch = next(batches)
                blur = batch["blur"].to(self.device, non_blocking=True)
                sharp = batch["sharp"].to(self.device, non_blocking=True)
                if loop.channels_last:
                    blur = blur.contiguous(memory_format=torch.channels_last)
                    sharp = sharp.contiguous(memory_format=torch.channels_last)
                lr = self.schedule.apply(self.optimizer, self.iteration)
                terms, grad_norm, status = self._step(blur, sharp)
                skipped = status == "skipped"
                self.iteration += 1
                window_iters += 1
                if skipped:
                    self.nonfinite_total += 1
                    self.nonfinite_run += 1
                    if self.dist.is_main:
                        log.warning(
                            "iteration %d: non-finite loss or gradient (%s); update skipped (%d in a row)",
                            self.iteration,
                            ", ".join(f"{k}={v:.4g}" for k, v in zip(names, terms.tolist())),
                            self.nonfinite_run,
                        )
                    if self.nonfinite_run >= loop.max_nonfinite:
                        raise TrainingDiverged(
                            f"training stopped at iteration {self.iteration}: {self.nonfinite_run} non-finite "
                            f"losses in a row (train.max_nonfinite); the run diverged - lower optim.lr, add "
                            f"schedule.warmup_iters or use train.amp=bf16/none, then --resume from the last checkpoint"
                        )
                else:
                    self.nonfinite_run = 0
                if status == "ok":
                    window += torch.cat([terms, grad_norm.reshape(1).to(terms), terms.new_ones(1)])
                it = self.iteration
                if it % loop.log_every == 0 or it == total:
                    self._log(names, window, lr, time.perf_counter() - window_start, window_iters)
                    window.zero_()
                    window_start, window_iters = time.perf_counter(), 0
                if self.val_set is not None and ((loop.val_every and it % loop.val_every == 0) or it == total):
                    last_val = self._validate()
                if it % loop.checkpoint_every == 0 or it == total:
                    self._checkpoint()
                if self.dist.is_main:
                    self.callback.on_step(it, {"loss": float(terms[0]), "lr": lr, "skipped": float(skipped)})
        finally:
            del batches
        summary = self._summary(last_val)
        if self.dist.is_main:
            self.callback.on_end(summary)
        return summary

    def _summary(self, last_val: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "run_dir": str(self.run_dir),
            "validation": last_val,
            "best": self.best,
            "nonfinite_total": self.nonfinite_total,
            "amp_overflows": self.amp_overflows,
        }

    def _log(self, names: list[str], window: torch.Tensor, lr: float, seconds: float, iters: int) -> None:
        window = dist_utils.all_reduce_sum(window.clone(), self.dist)
        steps = float(window[-1])
        if not self.dist.is_main:
            return
        record: dict[str, Any] = {"type": "train", "iter": self.iteration}
        if steps > 0:
            means = (window[:-1] / steps).tolist()
            record.update({k: v for k, v in zip(names, means[: len(names)])})
            # The gradient norm is the same on every process after the all-reduce of the gradients.
            record["grad_norm"] = means[len(names)]
        record["lr"] = lr
        record["it_per_s"] = iters / seconds if seconds > 0 else None
        record["images_per_s"] = record["it_per_s"] * self.config.data.batch_size if seconds > 0 else None
        record["skipped"] = self.nonfinite_total
        if self.scaler.is_enabled():
            record["amp_scale"] = self.scaler.get_scale()
            record["amp_overflows"] = self.amp_overflows
        self._write_record(record)
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("type", "iter") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, self.iteration)
        self.callback.on_log(record)

    # ----------------------------------------------------------------------------------------------- validation
    def _val_count(self) -> int:
        count = len(self.val_set)
        if self.config.data.val_max_images:
            count = min(count, self.config.data.val_max_images)
        return count

    def _val_progress(self, done: int, total: int) -> None:
        if self.dist.is_main:
            hook = getattr(self.callback, "on_validation_progress", None)  # callbacks written before it existed
            if hook is not None:
                hook(done, total)

    @torch.no_grad()
    def _evaluate(self, model: nn.Module | None, panels: list, progress: list[int] | None = None) -> torch.Tensor:
        """Sums of (finite psnr, images with finite psnr, ssim, images) over this process's share of the
        validation set; identical images (PSNR = inf) are left out of the PSNR mean, as `nafft.metrics.mean_finite`
        does. `model` None scores the blurry input itself. `progress` is [done, total] image passes of the whole
        validation, advanced and reported per image."""
        from nafft.metrics import psnr, ssim

        count = self._val_count()
        sums = torch.zeros(4, dtype=torch.float64)
        was_training = model is not None and model.training
        if model is not None:
            model.eval()
        try:
            for index in range(self.dist.rank, count, self.dist.world_size):
                item = self.val_set[index]
                if model is None:
                    pred = item["blur"]
                else:
                    blur = item["blur"].unsqueeze(0).to(self.device)
                    if self.config.train.channels_last:
                        blur = blur.contiguous(memory_format=torch.channels_last)
                    pred = model(blur).float().clamp_(0, 1)[0].cpu()
                sharp = item["sharp"]
                value = psnr(pred, sharp)
                finite = math.isfinite(value)
                sums += torch.tensor(
                    [value if finite else 0.0, float(finite), ssim(pred, sharp), 1.0], dtype=torch.float64
                )
                if len(panels) < self.config.train.val_panels:
                    panels.append(torch.cat([item["blur"], pred, sharp], dim=-1))
                if progress is not None:
                    progress[0] += 1
                    self._val_progress(*progress)
        finally:
            if model is not None:
                model.train(was_training)
        return sums

    def _validate(self) -> dict[str, Any]:
        candidates = {"raw": self.net}
        if self.ema is not None:
            candidates["ema"] = self.ema.module
        record: dict[str, Any] = {"type": "val", "iter": self.iteration}
        panels: dict[str, list] = {}
        passes = len(candidates) + (self.input_scores is None)
        progress = [0, passes * len(range(self.dist.rank, self._val_count(), self.dist.world_size))]
        self._val_progress(*progress)
        if self.input_scores is None:  # the blurry input's scores, the bar a model has to clear
            sums = dist_utils.all_reduce_sum(self._evaluate(None, [], progress), self.dist)
            self.input_scores = (float(sums[0]) / max(float(sums[1]), 1.0), float(sums[2]) / max(float(sums[3]), 1.0))
        record["input_psnr"], record["input_ssim"] = self.input_scores
        for tag, model in candidates.items():
            panels[tag] = []
            sums = dist_utils.all_reduce_sum(self._evaluate(model, panels[tag], progress), self.dist)
            prefix = "" if tag == "raw" else "ema_"
            record[f"{prefix}psnr"] = float(sums[0]) / float(sums[1]) if sums[1] > 0 else math.inf
            record[f"{prefix}ssim"] = float(sums[2]) / max(float(sums[3]), 1.0)
            record["images"] = int(sums[3])
        # The validated weights that choose the best checkpoint: the EMA when there is one.
        pick = "ema" if self.ema is not None else "raw"
        prefix = "ema_" if pick == "ema" else ""
        score = record[f"{prefix}psnr"]
        improved = self.best is None or score > self.best["psnr"]
        if improved:
            self.best = {
                "iter": self.iteration,
                "psnr": score,
                "ssim": record[f"{prefix}ssim"],
                "weights": pick,
            }
        record["best_psnr"] = self.best["psnr"]
        if self.dist.is_main:
            if improved:
                self._save_weights(
                    candidates[pick],
                    self.ckpt_dir / "best.safetensors",
                    self._metadata(pick, nafft_val_psnr=f"{score:.4f}", nafft_val_ssim=f"{self.best['ssim']:.5f}"),
                )
            self._write_record(record)
            if self.tb is not None:
                for key in ("psnr", "ssim", "ema_psnr", "ema_ssim"):
                    if key in record:
                        self.tb.add_scalar(f"val/{key}", record[key], self.iteration)
                for tag, images in panels.items():
                    for i, panel in enumerate(images):
                        self.tb.add_image(f"val_{tag}/{i}_blur_pred_sharp", panel.clamp(0, 1), self.iteration)
            self.callback.on_validation(record)
            log.info(
                "iteration %d: validation PSNR %.3f dB, SSIM %.4f%s; blurry input %.3f dB, %.4f",
                self.iteration,
                record["psnr"],
                record["ssim"],
                f" (EMA {record['ema_psnr']:.3f} dB, {record['ema_ssim']:.4f})" if "ema_psnr" in record else "",
                record["input_psnr"],
                record["input_ssim"],
            )
        dist_utils.barrier(self.dist)
        return record

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        dist_utils.teardown(self.dist)


def _grad_scaler(device: torch.device, enabled: bool):
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")  # torch < 2.3


def train(
    config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, callback: Callback | None = None
) -> dict[str, Any]:
    """Run (or resume) a training run; see `Trainer`. Returns the summary of `Trainer.fit`.

    Without a `callback`, progress is logged (`LoggingCallback`), and shown on stderr when the caller has not set up
    logging at all (`visible_logging`).
    """
    with visible_logging():
        trainer = Trainer(config, run_dir, resume=resume, callback=callback or LoggingCallback())
        try:
            return trainer.fit()
        finally:
            trainer.close()
