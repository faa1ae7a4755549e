"""Automatic strength: how much of a restoration to keep, judged per image by a small network.

A deblurring network cannot always tell a photograph that is slightly soft, or sharp with a smooth out-of-focus
background, from one that is mildly shaken; when it "sharpens" such a photograph it damages it (docs/trust.md). The
guard looks at the input and at the restoration the model proposes (their difference shows what the model would
change: the edges of a shaken photograph, or invented contours and removed texture in a sharp one) and returns the
blend strength S in [0, 1] for the whole image: the output is `input + S x (restored - input)`, as with a
strength chosen by hand (`nafft.inference.predict.blend`). It is trained for one model's restorations
(`nafft.engine.guard_training`): for each training pair, the loss is the log mean squared error of that blend
against the sharp target, so the guard learns the strength that maximises the image's PSNR.

Shake blurs the whole frame alike, so one strength per image is the decision; the guard's evidence is pooled over
the whole image (mean and standard deviation of its features), computed tile by tile for large images so that
memory stays bounded, and it does not depend on the image's size.

Guard weights are safetensors files with a card (`GUARD_CARD_KEY`) saying which model's restorations they were
trained on; a bundled model's guard ships beside it (`nafft/weights/guards/NAME.safetensors`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nafft.errors import UserError

GUARD_CARD_KEY = "nafft_guard"
GUARD_TILE = 512  # the guard's features are computed on tiles of at most this side (bounded memory)
RESIDUAL_SCALE = 8.0  # the restoration's change is small next to the image; scaled to a similar range


class StrengthGuard(nn.Module):
    """Input and proposed restoration -> blend strength in [0, 1], one per image.

    Four 3x3 convolutions (the last three with stride 2) over the input (centred) and the scaled change, the mean
    and log standard deviation of the last features over the whole image, and a two-layer head with a sigmoid.
    """

    def __init__(self, width: int = 24):
        super().__init__()
        self.width = width
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(6, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.GELU(), nn.Linear(4 * w, 1))

    def pooled(self, image: torch.Tensor, restored: torch.Tensor, tile: int = GUARD_TILE) -> torch.Tensor:
        """(B, 8 x width): mean and log standard deviation of the features over the image (the log, because what
        tells a sharp image from a shaken one, the size of edges and of the change, spans orders of magnitude),
        from tiles of at most `tile` px (sums over tiles, so the result does not depend on how the image was cut, up to the tiles' borders)."""
        b, _, h, w = image.shape
        total = sq = None
        count = 0
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                a = image[:, :, y : y + tile, x : x + tile]
                r = restored[:, :, y : y + tile, x : x + tile]
                f = self.features(torch.cat([a - 0.5, RESIDUAL_SCALE * (r - a)], dim=1))
                s, s2 = f.sum(dim=(2, 3)), f.square().sum(dim=(2, 3))
                total, sq = (s, s2) if total is None else (total + s, sq + s2)
                count += f.shape[2] * f.shape[3]
        mean = total / count
        std = (sq / count - mean.square()).clamp_min(1e-8).sqrt()
        return torch.cat([mean, std.log()], dim=1)

    def forward(self, image: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """(B,) strengths in [0, 1] for (B, 3, H, W) inputs and restorations in [0, 1]."""
        return torch.sigmoid(self.head(self.pooled(image, restored))[:, 0])


def blend_strengths(image: torch.Tensor, restored: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """`image + S x (restored - image)` with one strength per image of the batch."""
    return image + strengths.view(-1, 1, 1, 1) * (restored - image)


def save_guard(guard: StrengthGuard, path: str | Path, card: dict[str, Any]) -> None:
    """Write a guard's weights and its card (which model it judges, how it was trained, what it scored)."""
    from safetensors.torch import save_file

    from nafft.atomic_files import atomic_write

    tensors = {k: v.detach().cpu().contiguous() for k, v in guard.state_dict().items()}
    metadata = {GUARD_CARD_KEY: json.dumps({"width": guard.width, **card})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_guard_card(path: str | Path) -> dict[str, Any]:
    """The card of a guard file; a UserError naming the file when it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such guard file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(GUARD_CARD_KEY)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(f"{path}: not a safetensors file ({exc})") from None
    if not raw:
        raise UserError(f"{path}: not a nafft guard (no '{GUARD_CARD_KEY}' metadata)")
    try:
        card = json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(f"{path}: the guard's card is not JSON") from None
    if not isinstance(card, dict):
        raise UserError(f"{path}: the guard's card is not a JSON object")
    return card


def load_guard(path: str | Path, device: str | torch.device = "cpu") -> StrengthGuard:
    """A guard from its safetensors file, in eval mode without gradients (never executes code from the file)."""
    from safetensors.torch import load_file

    card = read_guard_card(path)
    guard = StrengthGuard(width=int(card.get("width", 24)))
    try:
        guard.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: guard tensors do not match a width-{guard.width} guard ({first})") from None
    guard.card = card
    return guard.eval().requires_grad_(False).to(device)


def bundled_guard(name: str) -> Path | None:
    """The guard shipped for a bundled model (`nafft/weights/guards/NAME.safetensors`), None when there is none."""
    path = Path(str(resources.files("nafft.weights"))) / "guards" / f"{name}.safetensors"
    return path if path.is_file() else None


__all__ = ["GUARD_CARD_KEY", "StrengthGuard", "blend_strengths", "bundled_guard", "load_guard", "read_guard_card",
           "save_guard"]
