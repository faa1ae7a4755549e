"""Learning rate as a pure function of the iteration, set on the optimizer before every update.

Iteration i (0-based) is the i-th optimizer update of a run of `total` updates. With `warmup` iterations of linear
warm-up, update i < warmup uses `lr * (i + 1) / warmup`; then "cosine" anneals from `lr` at i = warmup to exactly
`eta_min` at the last update i = total - 1:

    lr_i = eta_min + (lr - eta_min) * (1 + cos(pi * (i - warmup) / (total - 1 - warmup))) / 2

(the seed code's bug was a T_max in iterations stepped once per epoch: its rate barely moved). Because the rate is
a function of i alone, resuming needs only the iteration number, never a scheduler object's hidden counter.
"""

from __future__ import annotations

import math

import torch


def learning_rate(
    iteration: int, total: int, lr: float, name: str = "cosine", eta_min: float = 0.0, warmup: int = 0
) -> float:
    """The learning rate of update `iteration` (0-based) out of `total`."""
    if not 0 <= iteration < total:
        raise ValueError(f"iteration {iteration} outside [0, {total})")
    if iteration < warmup:
        return lr * (iteration + 1) / warmup
    if name == "constant":
        return lr
    if name == "cosine":
        span = total - 1 - warmup
        if span <= 0:
            return lr
        progress = (iteration - warmup) / span
        return eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0
    raise ValueError(f"unknown schedule '{name}'; valid: cosine, constant")


class Schedule:
    """`learning_rate` bound to a run's settings; `apply(optimizer, i)` sets every group's rate for update i."""

    def __init__(self, total: int, lr: float, name: str = "cosine", eta_min: float = 0.0, warmup: int = 0):
        self.total, self.lr, self.name, self.eta_min, self.warmup = total, lr, name, eta_min, warmup
        learning_rate(0, total, lr, name, eta_min, warmup)  # validates the name early

    @classmethod
    def from_config(cls, config) -> Schedule:
        """From a `nafft.engine.config.TrainConfig`."""
        s = config.schedule
        return cls(config.train.iterations, config.optim.lr, s.name, s.eta_min, s.warmup_iters)

    def __call__(self, iteration: int) -> float:
        return learning_rate(iteration, self.total, self.lr, self.name, self.eta_min, self.warmup)

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> float:
        rate = self(iteration)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    def state_dict(self) -> dict:
        return {"name": self.name, "total": self.total, "lr": self.lr, "eta_min": self.eta_min, "warmup": self.warmup}
