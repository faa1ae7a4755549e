"""Train a strength guard (`nafft.inference.guard`) for one model: which share of its restoration to keep, per image.

The model restores every training pair once (`restore_pairs`, strength 1, as `nafft deblur` would); the guard's
measurements of each input and restoration (`StrengthGuard.measure`, whole and in random crops) are made once,
and its MLP learns the blend strength that brings each one nearest to its sharp target (`best_strengths`, a closed
form), with a binary cross-entropy against that strength as a soft label. (Minimising the blend's log MSE directly
lets the sigmoid saturate at the strength that suits most images, after which nothing moves it.)

Pairs should be ones the model was not trained on (fresh `nafft synth` pairs from the same sources): on its own
training pairs a model restores better than on new photographs, and the guard would learn to trust it too much.
Validation sets are scored every few epochs: mean and worst gain per set at strength 1 and under the guard, which
is how epochs and settings are chosen.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nafft.data.io import image_to_tensor, read_image
from nafft.data.pair_folders import gather_pairs
from nafft.inference.guard import StrengthGuard, blend_strengths
from nafft.inference.opened_model import OpenedModel
from nafft.inference.predict import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardTrainConfig:
    """Settings of `train_guard`.

    Attributes:
        width: the guard's hidden units.
        epochs: passes over the measured examples.
        batch: examples per step.
        crops: random crops measured per pair besides the whole pair (each with its own best strength).
        crop: side of those crops (pairs smaller than it are used whole).
        lr: AdamW learning rate, cosine-annealed to 1% over the epochs.
        weight_decay: AdamW weight decay.
        seed: crops and initial weights.
        ceiling: the most strength the guard may choose (`StrengthGuard.ceiling`; the validation scores are under
            it); the MLP learns the best strengths whatever it is.
    """

    width: int = 32
    epochs: int = 200
    batch: int = 256
    crops: int = 1
    crop: int = 192
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    ceiling: float = 1.0


@dataclass
class Restored:
    """One pair with the model's restoration: input, restoration and target as (3, H, W) float16 tensors."""

    name: str
    image: torch.Tensor
    restored: torch.Tensor
    target: torch.Tensor


def restore_pairs(model: OpenedModel, roots, limit: int | None = None) -> list[Restored]:
    """The model's restoration (strength 1) of every pair under `roots` (pair folders; at most `limit` per root),
    named FOLDER/NAME when there are several."""
    predictor = Predictor(model, strength=1.0)
    out: list[Restored] = []
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    for root in roots:
        pairs, problems = gather_pairs(root)
        for problem in problems:
            log.warning("%s", problem)
        prefix = f"{Path(root).name}/" if len(roots) > 1 else ""
        for pair in pairs[:limit]:
            x = image_to_tensor(read_image(pair.blur).rgb)
            t = image_to_tensor(read_image(pair.sharp).rgb)
            y = predictor(x).clamp_(0.0, 1.0)
            out.append(Restored(prefix + pair.name, x.half(), y.half(), t.half()))
    return out


def log_mse(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) `10 log10` of each image's mean squared error (minus the PSNR in dB for images in [0, 1])."""
    return 10.0 * torch.log10((image - target).square().mean(dim=(1, 2, 3)) + 1e-10)


def measure_examples(examples: list[Restored], crops: int = 0, crop: int = 192, seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The guard's measurements (`StrengthGuard.measure`) and the best strength of every example, whole and in
    `crops` random crops of `crop` px each: ((N, features), (N,))."""
    rng = np.random.default_rng(seed)
    feats, best = [], []
    for e in examples:
        x, y, t = (a.float()[None] for a in (e.image, e.restored, e.target))
        views = [(x, y, t)]
        h, w = x.shape[-2:]
        for _ in range(crops if min(h, w) > crop else 0):
            top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            views.append(tuple(a[..., top : top + crop, left : left + crop] for a in (x, y, t)))
        for a, b, c in views:
            feats.append(StrengthGuard.measure(a, b))
            best.append(best_strengths(a, b, c))
    return torch.cat(feats), torch.cat(best)


def best_strengths(image: torch.Tensor, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) the strength in [0, 1] whose blend is nearest to the target (least squares, closed form)."""
    change = restored - image
    num = (change * (target - image)).sum(dim=(1, 2, 3))
    return (num / change.square().sum(dim=(1, 2, 3)).clamp_min(1e-12)).clamp(0.0, 1.0)


@torch.no_grad()
def guard_gains(guard: StrengthGuard, examples: list[Restored], features: torch.Tensor | None = None
                ) -> dict[str, list[float]]:
    """Per image: the gain in dB of the restoration at strength 1 and under the guard (8-bit output, as saved),
    and the guard's strength; `features`: the examples' measurements when already made."""
    guard.eval()
    rows: dict[str, list[float]] = {"full": [], "guarded": [], "strength": []}
    for i, e in enumerate(examples):
        x, y, t = (a.float()[None] for a in (e.image, e.restored, e.target))
        s = guard(x, y) if features is None else guard.strengths(features[i : i + 1])
        base = log_mse(x, t)
        rows["full"].append(float(base - log_mse(y.mul(255.0).round().div(255.0), t)))
        out = blend_strengths(x, y, s).clamp(0.0, 1.0).mul(255.0).round().div(255.0)  # as saved: 8 bits
        rows["guarded"].append(float(base - log_mse(out, t)))
        rows["strength"].append(float(s))
    return rows


def summarize(rows: dict[str, list[float]]) -> dict[str, float]:
    """Mean and worst gain at strength 1 and under the guard, and the mean strength."""
    return {"full": float(np.mean(rows["full"])), "full_worst": float(np.min(rows["full"])),
            "guarded": float(np.mean(rows["guarded"])), "guarded_worst": float(np.min(rows["guarded"])),
            "strength": float(np.mean(rows["strength"]))}


def train_guard(features: torch.Tensor, best: torch.Tensor, config: GuardTrainConfig,
                validation: dict[str, tuple[list[Restored], torch.Tensor]] | None = None,
                on_epoch: Callable[[dict], None] | None = None, every: int = 20) -> tuple[StrengthGuard, list[dict]]:
    """A guard whose MLP is trained on measured examples (`measure_examples`: features and best strengths); the
    history has, every `every` epochs and at the last, the training loss, the seconds and the summary of each
    validation set (its examples and their measurements; `on_epoch` gets each entry as it is made)."""
    if not len(best):
        raise ValueError("no training pairs for the guard")
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    guard = StrengthGuard(config.width, config.ceiling)
    guard.feature_mean.copy_(features.mean(dim=0))
    guard.feature_std.copy_(features.std(dim=0).clamp_min(1e-6))
    opt = torch.optim.AdamW(guard.head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(best) / config.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=config.lr / 100)
    gen = torch.Generator().manual_seed(config.seed)
    history = []
    for epoch in range(1, config.epochs + 1):
        guard.train()
        losses = []
        for idx in torch.randperm(len(best), generator=gen).split(config.batch):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(guard.logits(features[idx]), best[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        if epoch % every and epoch != config.epochs:
            continue
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - start}
        for name, (val, val_feats) in (validation or {}).items():
            entry[name] = summarize(guard_gains(guard, val, val_feats))
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    return guard.eval(), history


__all__ = ["GuardTrainConfig", "Restored", "best_strengths", "guard_gains", "log_mse", "measure_examples",
           "restore_pairs", "summarize", "train_guard"]
