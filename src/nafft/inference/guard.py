"""Automatic strength: how much of a restoration to keep, judged per image by a small network.

A deblurring network cannot always tell a photograph that is slightly soft, or sharp with a smooth out-of-focus
background, from one that is mildly shaken; when it "sharpens" such a photograph it damages it (docs/trust.md). The
guard looks at the input and at the restoration the model proposes (their difference shows what the model would
change: the edges of a shaken photograph, or invented contours and removed texture in a sharp one) and returns the
blend strength S in [0, 1] for the whole image: the output is `input + S x (restored - input)`, as with a
strength chosen by hand (`nafft.inference.predict.blend`). It is trained for one model's restorations
(`nafft.engine.guard_training`): each training pair is labelled with the strength whose blend is nearest to its
sharp target (the one that maximises the image's PSNR), and the guard learns to predict it.

Shake blurs the whole frame alike, so one strength per image is the decision; the guard's evidence is a set of
global measurements of the input and the proposed change (`tile_features`: how crisp the edges are at three
scales, how much and how finely the model would change the image, whether edges run one way as shake leaves them,
the noise, the brightness change...), averaged over tiles spread over the image so that the time stays bounded at
any size, and a small MLP that maps them to the strength.

Guard weights are safetensors files with a card (`GUARD_CARD_KEY`) saying which model's restorations they were
trained on; a bundled model's guard ships beside it (`nafft/weights/guards/NAME.safetensors`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nafft.errors import UserError

GUARD_CARD_KEY = "nafft_guard"
GUARD_TILE = 384  # features are measured on tiles of at most this side (the size of its training views)...
GUARD_MAX_TILES = 9  # ...at most this many, spread over the image, and averaged (bounded time at any size)
EPS = 1e-4
FEATURE_NAMES = (
    "change_rms", "change_fine_rms", "input_gradient", "sharpening", "noise",
    "input_crisp_3", "input_crisp_7", "input_crisp_15", "output_crisp_3", "output_crisp_7", "output_crisp_15",
    "input_anisotropy", "change_anisotropy", "change_along_laplacian", "brightness", "brightness_change",
    "change_peakiness", "flat_share", "input_slope_2", "input_slope_4",
)


def _gradients(lum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.nn.functional.pad(lum[..., :, 1:] - lum[..., :, :-1], (0, 1))
    gy = torch.nn.functional.pad(lum[..., 1:, :] - lum[..., :-1, :], (0, 0, 0, 1))
    return gx, gy


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean(dim=(-2, -1)).sqrt()


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)


def _max(x: torch.Tensor, k: int) -> torch.Tensor:
    """Maximum over k x k windows, as two 1-D passes (a k x k pool costs k times more)."""
    pool = torch.nn.functional.max_pool2d
    return pool(pool(x, (k, 1), stride=1, padding=(k // 2, 0)), (1, k), stride=1, padding=(0, k // 2))


def _range(x: torch.Tensor, k: int) -> torch.Tensor:
    """Local contrast: maximum minus minimum over k x k windows."""
    return _max(x, k) + _max(-x, k)


def _quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """(B,) the q-quantile of each image (a selection, not a sort: the lower neighbour of torch.quantile's)."""
    flat = x.flatten(1)
    return flat.kthvalue(max(1, min(flat.shape[1], round(q * (flat.shape[1] - 1)) + 1)), dim=1).values


def _q99(x: torch.Tensor) -> torch.Tensor:
    return _quantile(x, 0.99)


def _anisotropy(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """(lambda1 - lambda2) / (lambda1 + lambda2) of the image's summed structure tensor: 0 when edges run every way,
    1 when they all run one way (as a straight shake leaves them)."""
    a, b, c = gx.square().mean(dim=(-2, -1)), gy.square().mean(dim=(-2, -1)), (gx * gy).mean(dim=(-2, -1))
    return ((a - b).square() + 4 * c.square()).sqrt() / (a + b + 1e-12)


def tile_features(image: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """(B, len(FEATURE_NAMES)) measurements of (B, 3, H, W) inputs and restorations in [0, 1] (see FEATURE_NAMES):
    how much and how finely the restoration changes the image, how crisp the input's and the output's edges are at
    three scales (steepest gradient over local contrast), the noise, the anisotropy of the edges (shake is
    directional) and of the change, whether the change follows the input's Laplacian (sharpening), the brightness
    and its change, and the input's spectral slope. Scales are logarithmic where they span orders of magnitude."""
    lum = image.mean(dim=1, keepdim=True).float()
    out = restored.clamp(0.0, 1.0).mean(dim=1, keepdim=True).float()  # the output as it will be saved
    change = out - lum
    gx, gy = _gradients(lum)
    ox, oy = _gradients(out)
    grad, ograd = (gx.square() + gy.square()).sqrt(), (ox.square() + oy.square()).sqrt()
    cx, cy = _gradients(change)
    lap = _box(lum, 3) - lum
    log = torch.log
    feats = [
        log(_rms(change) + EPS),
        log(_rms(change - _box(change, 3)) + EPS),
        log(_rms(grad) + EPS),
        log(_rms(ograd) + EPS) - log(_rms(grad) + EPS),
        log(_quantile((lum - _box(lum, 3)).abs(), 0.5)[:, None] + EPS),
    ]
    for source, g in ((lum, grad), (out, ograd)):
        for k in (3, 7, 15):
            feats.append(log(_q99(g)[:, None] + EPS) - log(_q99(_range(source, k))[:, None] + EPS))
    lap_c = (change * lap).mean(dim=(-2, -1)) / (_rms(change) * _rms(lap) + 1e-12)
    feats += [
        _anisotropy(gx, gy), _anisotropy(cx, cy), lap_c,
        lum.mean(dim=(-2, -1)), 255.0 * change.mean(dim=(-2, -1)),
        log(_q99(change.abs())[:, None] + EPS) - log(_rms(change) + EPS),
        (grad < 2.0 / 255.0).float().mean(dim=(-2, -1)),
    ]
    for k in (2, 4):
        small = torch.nn.functional.avg_pool2d(lum, k)
        sx, sy = _gradients(small)
        feats.append(log(_rms((sx.square() + sy.square()).sqrt()) + EPS) - log(_rms(grad) + EPS))
    return torch.cat([f.reshape(lum.shape[0], -1) for f in feats], dim=1)


def tile_starts_for(size: int, tile: int, count: int) -> list[int]:
    """Up to `count` starts of tiles of `tile` px spread evenly over `size` px (one start 0 when it fits)."""
    if size <= tile:
        return [0]
    n = min(count, -(-size // tile))
    return [round(i * (size - tile) / max(1, n - 1)) for i in range(n)]


class StrengthGuard(nn.Module):
    """Input and proposed restoration -> blend strength in [0, 1], one per image.

    Global measurements (`tile_features`, averaged over up to GUARD_MAX_TILES tiles of GUARD_TILE px spread over
    the image), standardised with the training set's mean and spread (buffers), then a small MLP with a sigmoid;
    the strength is at most `ceiling` (a shipping choice kept in the guard file's card, 1 unless set:
    `with_ceiling`).
    """

    def __init__(self, width: int = 32, ceiling: float = 1.0):
        super().__init__()
        self.width = width
        self.ceiling = check_ceiling(ceiling)
        n = len(FEATURE_NAMES)
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))
        self.head = nn.Sequential(nn.Linear(n, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                  nn.Linear(width, 1))

    @staticmethod
    @torch.no_grad()
    def measure(image: torch.Tensor, restored: torch.Tensor, tile: int = GUARD_TILE) -> torch.Tensor:
        """(B, features): `tile_features` averaged over tiles spread over the image (a tile grid of at most
        GUARD_MAX_TILES, so large images cost a bounded time)."""
        h, w = image.shape[-2:]
        side = max(1, int(GUARD_MAX_TILES**0.5))
        rows, cols = tile_starts_for(h, tile, side), tile_starts_for(w, tile, side)
        parts = [tile_features(image[..., y : y + tile, x : x + tile], restored[..., y : y + tile, x : x + tile])
                 for y in rows for x in cols]
        return torch.stack(parts).mean(dim=0)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.feature_mean) / self.feature_std)[:, 0]

    def strengths(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) strengths for measured features: the MLP's, at most the guard's ceiling."""
        return torch.sigmoid(self.logits(features)).clamp(max=self.ceiling)

    def forward(self, image: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """(B,) strengths in [0, ceiling] for (B, 3, H, W) inputs and restorations in [0, 1]."""
        return self.strengths(self.measure(image, restored))


def check_ceiling(ceiling: float) -> float:
    """A guard's ceiling (the most strength it may choose), a number in (0, 1]; a UserError otherwise."""
    if isinstance(ceiling, bool) or not isinstance(ceiling, (int, float)) or not 0.0 < ceiling <= 1.0:
        raise UserError(f"a guard's ceiling must be a number in (0, 1], got {ceiling!r}")
    return float(ceiling)


def blend_strengths(image: torch.Tensor, restored: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """`image + S x (restored - image)` with one strength per image of the batch (`predict.blend`, on a copy of
    `restored`)."""
    from nafft.inference.predict import blend

    return blend(image, restored.clone(), strengths)


def with_ceiling(source: str | Path, out: str | Path, ceiling: float, why: str = "") -> StrengthGuard:
    """Copy a guard file with its strength capped at `ceiling` (recorded in the card, with `why`); the MLP is the
    same."""
    guard = load_guard(source)
    guard.ceiling = check_ceiling(ceiling)
    card = {**guard.card, "ceiling_reason": why} if why else dict(guard.card)
    save_guard(guard, out, card)
    return guard


def save_guard(guard: StrengthGuard, path: str | Path, card: dict[str, Any]) -> None:
    """Write a guard's weights and its card (which model it judges, how it was trained, what it scored)."""
    from safetensors.torch import save_file

    from nafft.atomic_files import atomic_write

    tensors = {k: v.detach().cpu().contiguous() for k, v in guard.state_dict().items()}
    metadata = {GUARD_CARD_KEY: json.dumps({**card, "width": guard.width, "ceiling": guard.ceiling})}
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
    try:
        guard = StrengthGuard(width=int(card.get("width", 32)), ceiling=card.get("ceiling", 1.0))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    try:
        guard.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: guard tensors do not match a width-{guard.width} guard ({first})") from None
    guard.card = card
    return guard.eval().requires_grad_(False).to(device)


__all__ = ["GUARD_CARD_KEY", "StrengthGuard", "blend_strengths", "check_ceiling", "load_guard", "read_guard_card",
           "save_guard", "with_ceiling"]
