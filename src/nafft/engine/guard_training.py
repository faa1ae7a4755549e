"""Train a strength guard (`nafft.inference.guard`) for one model: which share of its restoration to keep, per image.

The model restores every training pair once (`restore_pairs`, strength 1, as `nafft deblur` would); the guard then
learns, from the input and that restoration, the blend strength S that maximises the pair's PSNR: the loss is the
mean over images of `10 log10(MSE(input + S x (restored - input), sharp))`, so a sharp photograph damaged by the
model pulls S towards 0 as strongly as a shaken one restored pulls it towards 1, whatever their PSNR. Crops and
flips/rotations are drawn anew every epoch; the restorations are not recomputed (they are the model's, fixed).

Pairs should be ones the model was not trained on (fresh `nafft synth` pairs from the same sources): on its own
training pairs a model restores better than on new photographs, and the guard would learn to trust it too much.
Validation sets (pair folders) are scored after every epoch: mean and worst gain per set at strength 1 and under
the guard, which is how epochs and settings are chosen.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nafft.data.io import image_to_tensor, read_image
from nafft.data.pair_folders import gather_pairs
from nafft.data.transforms import dihedral
from nafft.inference.guard import StrengthGuard, blend_strengths
from nafft.inference.opened_model import OpenedModel
from nafft.inference.predict import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardTrainConfig:
    """Settings of `train_guard`.

    Attributes:
        width: the guard's channels at full resolution.
        epochs: passes over the training pairs.
        batch: pairs per step.
        crop: side of the random crop taken from each pair every epoch (pairs smaller than it are used whole).
        lr: AdamW learning rate, cosine-annealed to 1% over the epochs.
        weight_decay: AdamW weight decay.
        seed: crops, flips and initial weights.
    """

    width: int = 24
    epochs: int = 30
    batch: int = 16
    crop: int = 192
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


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


def _batches(examples: list[Restored], config: GuardTrainConfig, rng: np.random.Generator):
    order = rng.permutation(len(examples))
    for start in range(0, len(order), config.batch):
        chosen = [examples[i] for i in order[start : start + config.batch]]
        size = min([config.crop] + [min(e.image.shape[-2:]) for e in chosen])
        stacks = []
        for e in chosen:
            h, w = e.image.shape[-2:]
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            t = int(rng.integers(0, 8))
            stacks.append([dihedral(a[:, y : y + size, x : x + size].float(), t, axes=(-2, -1))
                           for a in (e.image, e.restored, e.target)])
        yield [torch.stack([s[k] for s in stacks]) for k in range(3)]


def best_strengths(image: torch.Tensor, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) the strength in [0, 1] whose blend is nearest to the target (least squares, closed form)."""
    change = restored - image
    num = (change * (target - image)).sum(dim=(1, 2, 3))
    return (num / change.square().sum(dim=(1, 2, 3)).clamp_min(1e-12)).clamp(0.0, 1.0)


def guard_loss(guard: StrengthGuard, image: torch.Tensor, restored: torch.Tensor, target: torch.Tensor
               ) -> torch.Tensor:
    """Binary cross-entropy between the guard's strength and each image's best strength (`best_strengths`).

    (Minimising the blend's log MSE directly lets the sigmoid saturate at the strength that suits most images,
    after which nothing moves it; the best strength as a soft label keeps the gradient, `S - S*` on the logit.)
    """
    logits = guard.head(guard.pooled(image, restored))[:, 0]
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, best_strengths(image, restored, target))


@torch.no_grad()
def guard_gains(guard: StrengthGuard, examples: list[Restored]) -> dict[str, list[float]]:
    """Per image: the gain in dB of the restoration at strength 1 and under the guard, and the guard's strength."""
    guard.eval()
    rows: dict[str, list[float]] = {"full": [], "guarded": [], "strength": []}
    for e in examples:
        x, y, t = (a.float()[None] for a in (e.image, e.restored, e.target))
        s = guard(x, y)
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


def train_guard(examples: list[Restored], config: GuardTrainConfig,
                validation: dict[str, list[Restored]] | None = None,
                on_epoch: Callable[[dict], None] | None = None) -> tuple[StrengthGuard, list[dict]]:
    """A guard trained on `examples`; the history has, per epoch, the training loss, the seconds and the summary of
    each validation set (`on_epoch` gets each entry as it is made)."""
    if not examples:
        raise ValueError("no training pairs for the guard")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    guard = StrengthGuard(config.width)
    opt = torch.optim.AdamW(guard.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(examples) / config.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=config.lr / 100)
    history = []
    for epoch in range(1, config.epochs + 1):
        guard.train()
        start, losses = time.perf_counter(), []
        for x, y, t in _batches(examples, config, rng):
            loss = guard_loss(guard, x, y, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - start}
        for name, val in (validation or {}).items():
            entry[name] = summarize(guard_gains(guard, val))
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    return guard.eval(), history


def config_dict(config: GuardTrainConfig) -> dict:
    return asdict(config)


__all__ = ["GuardTrainConfig", "Restored", "guard_gains", "log_mse", "restore_pairs", "summarize", "train_guard"]
