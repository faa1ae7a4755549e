"""Prediction on images of any size: padding, tiling, x8 self-ensemble, half precision, strength.

`Predictor` runs an opened model (`nafft.inference.opened_model.OpenedModel`). Whole-image prediction relies on the
network padding its input to its padding multiple and cropping back (NAFNet does). Tiled prediction cuts the image
into overlapping tiles whose sizes and starts are multiples of the padding multiple (see `tile_layout`), runs each tile, and blends the outputs with a separable raised-cosine partition of unity; only one
tile's input and output and the full-size output accumulator live at a time, so memory no longer grows with the
image. Tiling is chosen automatically when the whole-image pass would need more than the memory budget, and on the
CPU also when it would be slower than tiles (see `speed_tile`).

TLC and tiling: with TLC, attention statistics are local means over a window of 1.5x the training patch (384 px for
256 crops), clipped to the input the network sees. In a tile the window is clipped to the tile instead of the image,
so tiled TLC output differs slightly from whole-image TLC output near tile borders, and a tile no larger than the
window turns TLC back into global pooling over the tile. Use tiles of at least twice the window (768 px for 256
crops) to keep tiled TLC close to whole-image TLC; the blending discards the outer quarter of every overlap.
Without TLC the difference is larger: global pooling over a tile is not global pooling over the image.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import torch

from nafft.data.transforms import NUM_TRANSFORMS, dihedral, undo_dihedral
from nafft.errors import UserError
from nafft.inference.opened_model import DeviceError, OpenedModel
from nafft.inference.tile_layout import TileLayout, round_up, tile_starts

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 32
MIN_AUTO_TILE = 256
# Memory one whole-image NAFNet forward adds (inference mode, float32), in units of H x W x width x 4 bytes, measured
# by `benchmarks/bench_inference.py --sections activations`: 10.5-11.2 with jemalloc, 11.2-17.4 with glibc malloc
# (nafnet-small and -w32 at 512 and 1024 px). 18 covers both.
ACTIVATION_FACTOR = 18.0
# The smallest tile, in units of the model's padding multiple: smaller tiles leave the deepest level a pixel or two
# wide, cost far more than they save, and leave no room for an overlap on the aligned grid.
MIN_TILE_MULTIPLES = 4
# CPU speed: an activation buffer above glibc's largest mmap threshold (32 MiB, also what `nafft.malloc_tuning` sets) is
# returned to the kernel when freed and page-faulted in again at the next allocation. Measured with
# `benchmarks/bench_inference.py --sections crossover` (1 thread, TLC on; docs/benchmarks.md "Whole or tiled"): whole
# images whose full-resolution buffers exceed it run slower per pixel the larger they are (nafnet-small: 2.1 s/MP at 512x512,
# 4.8 at 768, 7.5 at 2048; nafnet-w32: 11.4 s/MP at 384, 14.3 at 512, 22.8 at 1024), while tiles whose buffers stay
# well under it hold their speed (256-384 px tiles of nafnet-small, 8-19 MiB buffers: 1.3-1.7 s/MP, overlaps included;
# 352 px tiles of nafnet-w32, 31.7 MiB buffers, were already slow). `whole_slowdown` is fitted to those figures.
FAST_BUFFER_BYTES = 32 << 20
FAST_TILE_BYTES = 24 << 20


def whole_slowdown(buffer_bytes: int) -> float:
    """The per-pixel slowdown of a whole-image CPU pass whose largest buffer is `buffer_bytes`, against fast tiles:
    1 up to `FAST_BUFFER_BYTES`, then 1 + log2(size / threshold) / 2, at most 3 (1.5x at twice the threshold)."""
    if buffer_bytes <= FAST_BUFFER_BYTES:
        return 1.0
    return min(3.0, 1.0 + 0.5 * math.log2(buffer_bytes / FAST_BUFFER_BYTES))


def available_memory(device: torch.device) -> int:
    """Free memory in bytes: CUDA free memory, or MemAvailable on Linux (8 GiB when it cannot be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def default_memory_budget(device: torch.device) -> int:
    """Bytes the activations of one forward pass may use: 70% of free GPU memory, 40% of available RAM."""
    share = 0.7 if device.type == "cuda" else 0.4
    return int(available_memory(device) * share)


def estimate_memory(model: OpenedModel, height: int, width: int, element_size: int = 4) -> int:
    """Approximate peak bytes of one forward pass over an (H, W) input (activations, batch 1)."""
    m = model.padding_multiple
    return int(ACTIVATION_FACTOR * round_up(height, m) * round_up(width, m) * model.width * element_size)


def auto_tile(model: OpenedModel, height: int, width: int, budget: int, element_size: int = 4) -> int | None:
    """None when the whole image fits `budget`, else the largest square tile (a padding multiple) that fits."""
    if estimate_memory(model, height, width, element_size) <= budget:
        return None
    m = model.padding_multiple
    per_pixel = estimate_memory(model, m, m, element_size) / (m * m)
    side = math.isqrt(int(budget / per_pixel))
    return max(round_up(MIN_AUTO_TILE, m), side // m * m)


def largest_buffer(model: OpenedModel, height: int, width: int, element_size: int = 4) -> int:
    """Bytes of the largest activation tensor of a forward pass: the expanded channels at full resolution."""
    m = model.padding_multiple
    return round_up(height, m) * round_up(width, m) * model.width * model.expand * element_size


def speed_tile(model: OpenedModel, height: int, width: int, overlap: int | None = None,
               element_size: int = 4) -> int | None:
    """On the CPU: the tile side that makes an (H, W) image faster to predict than a whole-image pass, or None.

    Among the tiles whose buffers stay under `FAST_TILE_BYTES` (padder multiples from `MIN_AUTO_TILE`, and from the
    TLC window, so that a tile never turns TLC into pooling over the whole tile), the one whose layout computes the
    fewest pixels (overlaps and padding included) is chosen, if those pixels are fewer than `whole_slowdown` times
    the image's. A model whose TLC window is larger than any fast tile (official weights at width 32 or 64: 384 px)
    is not tiled for speed.
    """
    slowdown = whole_slowdown(largest_buffer(model, height, width, element_size))
    if slowdown <= 1.0:
        return None
    m = model.padding_multiple
    per_pixel = largest_buffer(model, m, m, element_size) / (m * m)
    largest = math.isqrt(int(FAST_TILE_BYTES / per_pixel)) // m * m
    smallest = round_up(max(MIN_AUTO_TILE, *(model.tlc_window or (0,))), m)
    padded = (round_up(height, m), round_up(width, m))
    best: tuple[int, int] | None = None
    for tile in range(smallest, largest + 1, m):
        ov = min(DEFAULT_OVERLAP, tile // 3) if overlap is None else overlap
        if tile - ov < m:
            continue
        pixels = 1
        for length in padded:
            t = min(tile, length)
            pixels *= len(tile_starts(length, t, ov, m)) * t
        if best is None or pixels <= best[0]:
            best = (pixels, tile)
    if best is None or best[0] >= slowdown * padded[0] * padded[1]:
        return None
    return best[1]


def self_ensemble(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The mean of `forward` over the 8 flips/rotations of `x` (`nafft.data.transforms.dihedral`), each mapped
    back."""
    out = None
    for t in range(NUM_TRANSFORMS):
        y = undo_dihedral(forward(dihedral(x, t, axes=(-2, -1)).contiguous()), t, axes=(-2, -1)).float()
        out = y if out is None else out.add_(y)
    return out / NUM_TRANSFORMS


AUTO = "auto"
# What users get when they give no strength (CLI, `nafft.deblur`, eval, the web app): the model's guard decides per
# image, and a model without a guard restores fully (docs/trust.md, "Automatic strength").
DEFAULT_STRENGTH = AUTO


def check_strength(strength: float | str) -> float | str:
    """`strength` as a float, or "auto" (the model's guard chooses it per image); a UserError when it is neither
    "auto" nor a number in [0, 1]."""
    if isinstance(strength, str) and strength.strip().lower() == AUTO:
        return AUTO
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise UserError(f"--strength must be 'auto' or a number from 0 to 1, got {strength!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise UserError(f"--strength must be from 0 to 1 (1: the full restoration, 0: the input), got {strength}")
    return value


def blend(image: torch.Tensor, pred: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """`image + strength * (pred - image)` in float32, computed in `pred` (overwritten) when 0 < strength < 1.

    The ends are exact: strength 1 returns `pred` itself and 0 a float copy of `image`, so that after the one
    rounding to 8 or 16 bits the result is bit-identical to the restoration, or to the input's pixels. A (B,)
    tensor gives each image of a (B, C, H, W) batch its own strength (the guard's), always computed in `pred`.
    """
    if isinstance(strength, torch.Tensor):
        image = image.to(pred.device, torch.float32)
        return pred.sub_(image).mul_(strength.to(pred.device, torch.float32).view(-1, 1, 1, 1)).add_(image)
    if strength >= 1.0:
        return pred
    image = image.to(pred.device, torch.float32)
    if strength <= 0.0:
        return image.clone()
    return pred.sub_(image).mul_(strength).add_(image)


class Predictor:
    """Run an opened model on (3, H, W) or (B, 3, H, W) float images in [0, 1] of any size.

    Args:
        model: the opened model (`open_model`, or `OpenedModel.from_network` for a network in memory); it runs on
            its device in its memory format, and is left as it is (float16 runs on a copy).
        tile: tile side in pixels (at least 4x the model's padding multiple: 64 px for NAFNet); None chooses
            automatically (memory budget, and speed on the CPU), 0 never tiles.
        overlap: least overlap between neighbouring tiles, in pixels, at most a third of the tile; None: 32 px, or a
            third of a smaller tile.
        self_ensemble: average over the 8 flips/rotations (8x the time).
        half: float16 weights and activations (CUDA only, see `OpenedModel.precisions`; FFT blocks still run in
            float32).
        memory_budget: bytes one forward pass may use for activations (default: from free memory).
        on_tile: called with (tiles done, tiles in the image) after every tile of a tiled prediction (progress).
        strength: how much of the restoration to apply, 0..1: the output is `blend(image, prediction, strength)`,
            in float before anything rounds it (1, the default: the prediction itself; 0: the input); "auto": the
            model's guard chooses it per image (`nafft.inference.guard`; strength 1 for a model without one).
            `last_strengths` holds the strengths used for the last call's images.

    Raises:
        UserError: a tile, overlap, memory budget, precision or strength outside its range, before anything is
            computed.
    """

    def __init__(
        self,
        model: OpenedModel,
        tile: int | None = None,
        overlap: int | None = None,
        self_ensemble: bool = False,
        half: bool = False,
        memory_budget: int | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        strength: float | str = 1.0,
    ):
        self.opened = model
        self.device = model.device
        if half and "float16" not in model.precisions:
            raise DeviceError("half precision needs a CUDA device (float16 is slower than float32 on CPUs)")
        self.multiple = model.padding_multiple
        self.min_tile = MIN_TILE_MULTIPLES * self.multiple
        if tile is not None and tile != 0 and tile < self.min_tile:
            raise UserError(
                f"--tile {tile}: too small for this model; use 0 (never tile) or a tile of at least {self.min_tile} px "
                f"({MIN_TILE_MULTIPLES}x its padding multiple {self.multiple})"
            )
        if overlap is not None and overlap < 0:
            raise UserError(f"--overlap must be 0 or more pixels, got {overlap}")
        if tile and overlap is not None and overlap > round_up(tile, self.multiple) // 3:
            most = round_up(tile, self.multiple) // 3
            raise UserError(
                f"--overlap {overlap} is more than a third of --tile {tile}; use --overlap 0..{most} or a tile of at "
                f"least {3 * overlap} px"
            )
        if memory_budget is not None and not memory_budget > 0:
            raise UserError(f"--memory-budget must be a positive size, got {memory_budget} bytes")
        self.dtype = torch.float16 if half else torch.float32
        # the opened model stays float32 for its other users
        self.network = copy.deepcopy(model.network).half() if half else model.network
        self.tile = tile
        self.overlap = overlap
        self.self_ensemble = self_ensemble
        self.memory_budget = (
            memory_budget if memory_budget is not None else default_memory_budget(self.device)
        )
        self.on_tile = on_tile
        self.strength = check_strength(strength)
        self.last_tiles = 0  # tiles used by the last call (0: whole image)
        self.last_strengths: list[float] = []  # the strength applied to each image of the last call
        # Video: under "auto", the strength applied follows the guard's through an exponential moving average over
        # successive images (this weight per image), so that it does not flicker from frame to frame; None: each
        # image its own. `smoothed_strength` is the running value (None: start afresh).
        self.auto_smoothing: float | None = None
        self.smoothed_strength: float | None = None

    def overlap_for(self, tile: int) -> int:
        """The overlap used with tiles of `tile` px: the one asked for, or 32 px capped at a third of the tile."""
        if self.overlap is not None:
            return self.overlap
        return min(DEFAULT_OVERLAP, round_up(tile, self.multiple) // 3)

    def tile_for(self, height: int, width: int, batch: int = 1) -> int | None:
        """The tile side used for a batch of (H, W) images, None for a whole-image pass."""
        if self.tile == 0:
            return None
        if self.tile is not None:
            return self.tile if self.tile < max(height, width) else None
        element = 2 if self.dtype == torch.float16 else 4
        tile = auto_tile(self.opened, height, width, self.memory_budget // max(1, batch), element)
        if tile is not None:
            need = estimate_memory(self.opened, height, width, element) / 2**30
            log.info(
                "%dx%d needs about %.1f GiB for a whole-image pass, more than the %.1f GiB budget: tiles of %d px "
                "(--tile and --memory-budget change this)",
                width, height, need, self.memory_budget / 2**30, tile,
            )  # fmt: skip
        if self.device.type == "cpu":
            fast = speed_tile(self.opened, height, width, self.overlap, element)
            if fast is not None and (tile is None or fast < tile):
                log.info(
                    "%dx%d: tiles of %d px, faster than a whole-image pass on the CPU (--tile 0 turns this off)",
                    width, height, fast,
                )  # fmt: skip
                tile = fast
        if tile is not None and self.overlap is not None:
            tile = max(tile, round_up(3 * self.overlap, self.multiple))  # room for the requested overlap
        if tile is not None and tile >= max(height, width):
            return None
        return tile

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model output for a CPU or device batch; returned float32 on the CPU."""
        x = x.to(self.device, self.dtype)
        # no_grad rather than inference_mode: callers may modify the result in place (deblur quantises it)
        with torch.no_grad():
            if self.self_ensemble:
                y = self_ensemble(self.network, x)
            else:
                y = self.network(x)
        return y.float().cpu()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        single = image.ndim == 3
        x = image[None] if single else image
        if x.ndim != 4:
            raise ValueError(f"expected (3, H, W) or (B, 3, H, W), got shape {tuple(image.shape)}")
        h, w = x.shape[-2:]
        self.last_tiles = 0
        if self.strength == 0.0:  # the input itself: nothing to compute
            out = blend(x, x, 0.0)
        else:
            tile = self.tile_for(h, w, x.shape[0])
            out = self._forward(x) if tile is None else self.predict_tiled(x, tile)
            if self.strength == AUTO:
                return self._guarded(x, out, single)
            out = blend(x, out, self.strength)
        self.last_strengths = [float(self.strength)] * x.shape[0]
        return out[0] if single else out

    def _guarded(self, x: torch.Tensor, out: torch.Tensor, single: bool) -> torch.Tensor:
        """The restoration blended with the input at the strength the model's guard chooses for each image."""
        guard = self.opened.guard
        if guard is None:  # no guard: the full restoration
            self.last_strengths = [1.0] * x.shape[0]
            return out[0] if single else out
        dev = next(guard.parameters()).device
        with torch.no_grad():
            strengths = guard(x.to(dev, torch.float32), out.to(dev)).float().cpu()
        if self.auto_smoothing is not None:
            for i, value in enumerate(strengths.tolist()):
                last = self.smoothed_strength
                self.smoothed_strength = value if last is None else last + self.auto_smoothing * (value - last)
                strengths[i] = self.smoothed_strength
        self.last_strengths = [float(s) for s in strengths]
        out = blend(x, out, strengths)
        return out[0] if single else out

    def predict_tiled(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """Tiled prediction of a (B, C, H, W) CPU batch with blended overlaps; float32 CPU result."""
        b, c, h, w = x.shape
        layout = TileLayout(h, w, tile, self.overlap_for(tile), self.multiple)
        self.last_tiles = len(layout)
        log.debug("tiling %dx%d into %d tiles of %s", h, w, len(layout), layout.tile)
        th, tw = layout.tile
        out = torch.zeros(b, c, h, w, dtype=torch.float32)
        for done, (y, x0, wy, wx) in enumerate(layout, 1):
            patch = x[:, :, y : y + th, x0 : x0 + tw]
            ph, pw = patch.shape[-2:]
            if ph < th or pw < tw:  # the last row/column reaches into the padding: zeros, as the model pads
                patch = torch.nn.functional.pad(patch, (0, tw - pw, 0, th - ph))
            pred = self._forward(patch)[:, :, :ph, :pw]
            weight = (wy[:ph, None] * wx[None, :pw]).to(torch.float32)
            out[:, :, y : y + ph, x0 : x0 + pw].addcmul_(pred, weight)
            if self.on_tile is not None:
                self.on_tile(done, len(layout))
        return out
