"""The training loop: iteration-based AdamW with a per-iteration schedule, mixed precision, EMA, exact resume and
DistributedDataParallel.

One iteration is one optimizer update on one global batch of `data.batch_size` random crops. Sample numbers are
handed out by `SampleSampler`: iteration i uses samples `i * batch_size ... (i + 1) * batch_size - 1`, each process
takes its slice, and every crop and flip is a function of (seed, sample number). So the batches do not depend on the
number of processes or loader workers, and resuming at iteration i only needs i.

Under DDP every process trains on `batch_size / world_size` samples (split again into `train.accumulate`
micro-batches), gradients are averaged, and rank 0 alone writes logs and checkpoints while the others wait at a
barrier. Validation (`nafft.engine.validate`) is split across the processes and scored as `nafft eval` scores.

A step whose loss or gradient norm is not finite is skipped (no update, no EMA update) and counted; after
`train.max_nonfinite` in a row the run stops with `TrainingDiverged`. Under fp16 the gradient scaler skips steps
with overflowing gradients itself (counted as `amp_overflows`), as usual.

Outputs in RUN_DIR: config.yaml (the resolved config), metrics.jsonl and tb/ (`nafft.engine.runlog`), checkpoints/
(`nafft.engine.run_checkpoints.CheckpointSaver`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nafft.engine import distributed as dist_utils
from nafft.engine import run_checkpoints as ckpt
from nafft.engine.callbacks import Callback, LoggingCallback, call, visible_logging
from nafft.engine.config import TrainConfig, changed_settings
from nafft.engine.ema import EMA
from nafft.engine.runlog import RunLog
from nafft.engine.schedule import Schedule
from nafft.engine.validate import Validator
from nafft.errors import CheckpointError, ConfigError, UserError
from nafft.losses import CombinedLoss
from nafft.models.checkpoint import TRAIN_CONFIG_KEY as CONFIG_KEY  # noqa: F401 (kept importable from here)
from nafft.typed_config import dump_yaml, to_dict

__all__ = ["Callback", "LoggingCallback", "Trainer", "TrainingDiverged", "train"]

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(UserError):
    """Too many non-finite losses in a row."""


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
        self.config, self.run_dir, self.callback = config, Path(run_dir), callback or Callback()
        self.dist, self.device = dist_utils.setup(config.train.device)
        try:
            self._check_data_config()
            existing = ckpt.latest_state(self.run_dir / "checkpoints")
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
        if data.batch_size % (self.dist.world_size * loop.accumulate):
            raise ConfigError(
                f"data.batch_size ({data.batch_size}) is the global batch and must be divisible by the number of "
                f"processes ({self.dist.world_size}) times train.accumulate ({loop.accumulate})"
            )

    @classmethod
    def for_timing(cls, config: TrainConfig) -> Trainer:
        """A trainer of `config` without data, run folder or checkpoints: the model, optimizer, loss, precision and
        memory format that `step` uses, so that a step's cost is measured on the step training runs
        (`nafft.experiments.runs.time_training_steps`)."""
        self = cls.__new__(cls)
        self.config, self.run_dir, self.callback = config, None, Callback()
        self.dist, self.device = dist_utils.setup(config.train.device)
        self._build_step(init=False)
        self._wrap()
        return self

    def _build_step(self, init: bool) -> None:
        """What one update needs: the seeded model (from `model.init` when `init`), its memory format, EMA,
        optimizer, precision and loss, and the batch split."""
        from nafft.models import build_model, preferred_channels_last, set_memory_format

        cfg, loop = self.config, self.config.train
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(loop.seed)
        np.random.seed(loop.seed % 2**32)
        random.seed(loop.seed)
        self.net = build_model(cfg.model_config()).to(self.device)
        if init and cfg.model.get("init"):
            self._init_from(Path(cfg.model["init"]))
        self.channels_last = (preferred_channels_last(self.device) if loop.channels_last == "auto"
                              else loop.channels_last)
        set_memory_format(self.net, self.channels_last)
        self.ema = EMA(self.net, loop.ema) if loop.ema > 0 else None
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        self.amp_dtype = AMP_DTYPES.get(loop.amp)
        self.scaler = _grad_scaler(self.device, enabled=loop.amp == "fp16")
        self.criterion = CombinedLoss.from_config(cfg.loss).to(self.device)
        self.iteration = self.nonfinite_total = self.nonfinite_run = self.amp_overflows = 0
        self.per_rank_batch = cfg.data.batch_size // self.dist.world_size
        self.micro_batch = self.per_rank_batch // loop.accumulate

    def _wrap(self) -> None:
        """`model`: the network under DDP and torch.compile as configured (`net` stays the bare network)."""
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.model: nn.Module = self.net
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = self.ddp = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if self.config.train.compile:
            self.model = torch.compile(self.model)

    def _build(self, resume_from: tuple[int, Path] | None) -> None:
        from nafft.data.datasets import PairedEvalDataset, PairedTrainDataset

        cfg, loop, main = self.config, self.config.train, self.dist.is_main
        self._build_step(init=resume_from is None)
        self.schedule = Schedule.from_config(cfg)
        self.saver = ckpt.CheckpointSaver(self.run_dir / "checkpoints", cfg.to_json(), loop.keep_checkpoints,
                                          loop.keep_states, writes=main)
        if resume_from is not None:
            self._load_state(*resume_from)
        elif main:
            log.info("starting a new run in %s", self.run_dir)
        self._wrap()
        if main:
            ckpt.atomic_write(self.run_dir / "config.yaml", lambda tmp: dump_yaml(cfg, tmp))
        self.runlog = RunLog(self.run_dir, self.iteration, loop.tensorboard, writes=main)
        self.train_set = PairedTrainDataset(list(cfg.data.train), cfg.data.patch_size, loop.seed,
                                            augment=cfg.data.augment)
        self.val_set = PairedEvalDataset(cfg.data.val) if cfg.data.val else None
        self.validator = Validator(self.val_set, self.device, self.dist, cfg.data.val_max_images, self.channels_last,
                                   loop.val_panels, progress=lambda *done: self._hook("on_validation_progress", *done))
        dist_utils.barrier(self.dist)

    def _init_from(self, path: Path) -> None:
        from nafft.models import load_matching

        try:
            loaded, left = load_matching(self.net, path)
        except CheckpointError as exc:
            raise ConfigError(f"model.init: {exc}") from None
        if self.dist.is_main:
            log.info("model.init: %d tensors from %s%s", len(loaded), path,
                     f"; {len(left)} keep their random initialisation (e.g. {', '.join(left[:3])})" if left else "")

    def _loader(self) -> Iterator[dict[str, Any]]:
        from nafft.data.datasets import SampleSampler

        # Global batch i = sample numbers [i * batch_size, (i + 1) * batch_size); this rank takes its slice.
        sampler = SampleSampler(self.iteration, self.per_rank_batch, rank=self.dist.rank,
                                world_size=self.dist.world_size)
        return iter(torch.utils.data.DataLoader(
            self.train_set, batch_size=self.per_rank_batch, sampler=sampler,
            num_workers=self.config.data.num_workers, pin_memory=self.device.type == "cuda",
        ))  # fmt: skip

    # ----------------------------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        """The training state (format 1; these keys are what `--resume` reads, also from files of older runs)."""
        return {
            "format": 1,
            "iteration": self.iteration,
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "schedule": self.schedule.state_dict(),
            "rng": ckpt.rng_state(),
            "counters": {
                "nonfinite_total": self.nonfinite_total,
                "nonfinite_run": self.nonfinite_run,
                "amp_overflows": self.amp_overflows,
            },
            "best": self.saver.best,
            "world_size": self.dist.world_size,
            "config": to_dict(self.config),
        }

    def _load_state(self, iteration: int, path: Path) -> None:
        state = ckpt.load_state(path)
        old_cfg, new_cfg = state.get("config", {}), to_dict(self.config)
        # model.init only chose the starting weights; the architecture is everything else
        if _architecture(old_cfg.get("model", {})) != _architecture(new_cfg["model"]):
            raise CheckpointError(f"{path}: the model in the config differs from the run's model; cannot resume")
        changed = changed_settings(old_cfg, new_cfg)
        if changed and self.dist.is_main:
            log.warning("resuming with changed settings: %s", ", ".join(changed))
        self.net.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:
            self.ema = EMA(self.net, self.config.train.ema)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        counters = state.get("counters", {})
        self.nonfinite_total = int(counters.get("nonfinite_total", 0))
        self.nonfinite_run = int(counters.get("nonfinite_run", 0))
        self.amp_overflows = int(counters.get("amp_overflows", 0))
        self.saver.best = state.get("best")
        self.iteration = int(state["iteration"])
        if self.iteration != iteration:
            raise CheckpointError(f"{path}: holds iteration {self.iteration}, its name says {iteration}")
        if self.dist.is_main:
            log.info("resumed from %s (iteration %d)", path, self.iteration)

    @property
    def best(self) -> dict[str, Any] | None:
        return self.saver.best

    # ----------------------------------------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train to `train.iterations`; returns a summary (final iteration, last validation, best, counters).
        The callback's `on_end` runs however the loop ends: finished, nothing to do, diverged or interrupted."""
        loop, total = self.config.train, self.config.train.iterations
        end = loop.stop_at or total  # where this process stops; the schedule still runs to `total`
        names = ["loss", *(f"loss_{k}" for k in self.criterion.weights)]
        last_val: dict[str, Any] | None = None
        self._hook("on_start", self.iteration, total, self.run_dir)
        try:
            if self.iteration >= end:
                log.info("nothing to do: the run already reached iteration %d", self.iteration)
                return self._summary(last_val)
            batches = self._loader()
            window = torch.zeros(len(names) + 2, device=self.device)  # terms..., grad_norm, steps
            window_start, window_iters = time.perf_counter(), 0
            deadline = window_start + 60 * loop.max_minutes if loop.max_minutes else None
            self.net.train()
            while self.iteration < end:
                blur, sharp = self.place(next(batches))
                lr = self.schedule.apply(self.optimizer, self.iteration)
                terms, grad_norm, status = self.step(blur, sharp)
                self.iteration += 1
                window_iters += 1
                self._count(status, names, terms)
                if status == "ok":
                    window += torch.cat([terms, grad_norm.reshape(1).to(terms), terms.new_ones(1)])
                it = self.iteration
                out_of_time = deadline is not None and it % loop.log_every == 0 and self._past(deadline)
                last = it == end or out_of_time
                if it % loop.log_every == 0 or last:
                    self._log(names, window, lr, time.perf_counter() - window_start, window_iters)
                    window.zero_()
                    window_start, window_iters = time.perf_counter(), 0
                if self.val_set is not None and ((loop.val_every and it % loop.val_every == 0) or last):
                    last_val = self._validate()
                if it % loop.checkpoint_every == 0 or last:
                    self._checkpoint()
                self._hook("on_step", it, {"loss": float(terms[0]), "lr": lr, "skipped": float(status == "skipped")})
                if out_of_time:
                    log.info("stopping at iteration %d of %d: train.max_minutes=%g reached (--resume continues)",
                             it, total, loop.max_minutes)
                    break
            if self.iteration == end < total:
                log.info("stopping at iteration %d of %d: train.stop_at (--resume --set train.stop_at=0 continues)",
                         end, total)
            return self._summary(last_val)
        finally:
            self._hook("on_end", self._summary(last_val))

    def _past(self, deadline: float) -> bool:
        """Whether any process is past `deadline` (all processes stop at the same iteration)."""
        flag = torch.tensor([float(time.perf_counter() > deadline)], device=self.device)
        return bool(dist_utils.all_reduce_max(flag, self.dist).item())

    def place(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader batch's blur and sharp tensors on the training device, in the training memory format."""
        blur = batch["blur"].to(self.device, non_blocking=True)
        sharp = batch["sharp"].to(self.device, non_blocking=True)
        if self.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
            sharp = sharp.contiguous(memory_format=torch.channels_last)
        return blur, sharp

    def step(self, blur: torch.Tensor, sharp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """One update on this process's share of the batch.

        Returns:
            (loss terms vector, gradient norm, status): status "ok", "skipped" (non-finite loss or gradient: no
            update) or "overflow" (fp16 gradients overflowed: the scaler skipped the update and lowered its scale).
        """
        n, scaler = self.config.train.accumulate, self.scaler
        self.optimizer.zero_grad(set_to_none=True)
        terms = None
        for j in range(n):
            part = slice(j * self.micro_batch, (j + 1) * self.micro_batch)
            # accumulate locally; all-reduce on the last micro-batch only
            sync = self.ddp.no_sync() if j < n - 1 and self.ddp is not None else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    pred = self.model(blur[part])
                loss, parts = self.criterion(pred, sharp[part])
                # Backward even for a non-finite loss: under DDP every process must join the gradient all-reduce;
                # the poisoned gradients are thrown away below.
                scaler.scale(loss / n).backward()
            vec = torch.stack([loss.detach(), *parts.values()])
            terms = vec if terms is None else terms + vec
        terms = terms / n
        if scaler.is_enabled():
            scaler.unscale_(self.optimizer)
        clip = self.config.optim.clip_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip if clip > 0 else math.inf).detach()
        bad = (~torch.isfinite(terms[0])).float()
        if not scaler.is_enabled():
            bad = torch.maximum(bad, (~torch.isfinite(grad_norm)).float())
        if dist_utils.all_reduce_max(bad, self.dist).item():
            self.optimizer.zero_grad(set_to_none=True)
            if scaler.is_enabled():
                scaler.update()
            return terms, grad_norm, "skipped"
        if scaler.is_enabled():
            scale = scaler.get_scale()
            scaler.step(self.optimizer)
            scaler.update()
            if scaler.get_scale() < scale:  # overflowing gradients: the scaler skipped the update
                self.amp_overflows += 1
                return terms, grad_norm, "overflow"
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.net)
        return terms, grad_norm, "ok"

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _count(self, status: str, names: list[str], terms: torch.Tensor) -> None:
        """Count a skipped step; too many in a row raise TrainingDiverged."""
        if status != "skipped":
            self.nonfinite_run = 0
            return
        self.nonfinite_total += 1
        self.nonfinite_run += 1
        if self.dist.is_main:
            log.warning("iteration %d: non-finite loss or gradient (%s); update skipped (%d in a row)",
                        self.iteration, ", ".join(f"{k}={v:.4g}" for k, v in zip(names, terms.tolist())),
                        self.nonfinite_run)
        if self.nonfinite_run >= self.config.train.max_nonfinite:
            raise TrainingDiverged(
                f"training stopped at iteration {self.iteration}: {self.nonfinite_run} non-finite losses in a row "
                f"(train.max_nonfinite); the run diverged - lower optim.lr, add schedule.warmup_iters or use "
                f"train.amp=bf16/none, then --resume from the last checkpoint"
            )

    def _summary(self, last_val: dict[str, Any] | None) -> dict[str, Any]:
        return {"iteration": self.iteration, "run_dir": str(self.run_dir), "validation": last_val, "best": self.best,
                "nonfinite_total": self.nonfinite_total, "amp_overflows": self.amp_overflows}

    def _hook(self, name: str, *args) -> None:
        if self.dist.is_main:
            call(self.callback, name, *args)

    # ----------------------------------------------------------------------------------------------- records
    def _log(self, names: list[str], window: torch.Tensor, lr: float, seconds: float, iters: int) -> None:
        window = dist_utils.all_reduce_sum(window.clone(), self.dist)
        steps = float(window[-1])
        if not self.dist.is_main:
            return
        record: dict[str, Any] = {"type": "train", "iter": self.iteration}
        if steps > 0:
            means = (window[:-1] / steps).tolist()
            record.update(zip(names, means))
            # The gradient norm is the same on every process after the all-reduce of the gradients.
            record["grad_norm"] = means[len(names)]
        record["lr"] = lr
        record["it_per_s"] = iters / seconds if seconds > 0 else None
        record["images_per_s"] = record["it_per_s"] * self.config.data.batch_size if seconds > 0 else None
        record["skipped"] = self.nonfinite_total
        if self.scaler.is_enabled():
            record["amp_scale"] = self.scaler.get_scale()
            record["amp_overflows"] = self.amp_overflows
        self.runlog.write(record)
        self._hook("on_log", record)

    def _checkpoint(self) -> None:
        path = self.saver.save(self.iteration, self._state(), self.net, self.ema)
        if path is not None:
            log.debug("checkpoint %s", path)
            self._hook("on_checkpoint", self.iteration, path)
        dist_utils.barrier(self.dist)

    # ----------------------------------------------------------------------------------------------- validation
    def _validate(self) -> dict[str, Any]:
        """Score the raw (and EMA) weights, write the record and keep the best weights (the EMA's when there is
        one)."""
        candidates = {"raw": self.net} | ({"ema": self.ema.module} if self.ema is not None else {})
        scores, panels = self.validator(candidates)
        record: dict[str, Any] = {"type": "val", "iter": self.iteration, **scores}
        pick = "ema" if self.ema is not None else "raw"
        prefix = "ema_" if pick == "ema" else ""
        self.saver.validated(self.iteration, candidates[pick], pick, record[f"{prefix}psnr"], record[f"{prefix}ssim"])
        record["best_psnr"] = self.best["psnr"]
        if self.dist.is_main:
            self.runlog.write(record, scalars=("psnr", "ssim", "ema_psnr", "ema_ssim"))
            self.runlog.panels(panels, self.iteration)
            self._hook("on_validation", record)
            log.info(
                "iteration %d: validation PSNR %.3f dB, SSIM %.4f%s; blurry input %.3f dB, %.4f", self.iteration,
                record["psnr"], record["ssim"],
                f" (EMA {record['ema_psnr']:.3f} dB, {record['ema_ssim']:.4f})" if "ema_psnr" in record else "",
                record["input_psnr"], record["input_ssim"],
            )  # fmt: skip
        dist_utils.barrier(self.dist)
        return record

    def close(self) -> None:
        self.runlog.close()
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


def _architecture(model_cfg: dict) -> dict:
    return {k: v for k, v in model_cfg.items() if k != "init"}
