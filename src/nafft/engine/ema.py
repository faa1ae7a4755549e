"""Exponential moving average of a model's weights.

After update n (1-based count of EMA updates), every floating-point parameter and buffer follows

    shadow <- d_n * shadow + (1 - d_n) * weight,   d_n = min(decay, (1 + n) / (10 + n))

The warm-up `(1 + n) / (10 + n)` (as in TensorFlow's `ExponentialMovingAverage(num_updates=...)`) lets the average
forget the random initialisation quickly in short runs; after ~10 / (1 - decay) updates it is plain `decay`.
Integer buffers are copied. The shadow is a full copy of the model (`ema.module`), validated and saved like the
raw weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds `module`, an eval-mode copy of a model whose weights are the moving average."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        shadow = self.module.state_dict()
        for name, value in model.state_dict().items():
            avg = shadow[name]
            if avg.is_floating_point():
                avg.mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])
