"""Open a model for inference: one object that carries what every user of the network needs to know.

`open_model(source, device=...)` takes a bundled model's name ("nafft-photo", see `nafft.weights`), a weight file (a
nafft run's checkpoint or any nafft safetensors, an official NAFNet `.pth`) or a preset name (untrained weights, for
profiling and export), and returns an `OpenedModel`: the network folded (DO-Conv into plain convolutions), in eval
mode, on the resolved device, in the memory format chosen for that device, with TLC set from the training crop
size; and beside it what callers used to guess from a bare module: the padding multiple, the width, the TLC window,
the supported precisions, the card of a bundled model and a name for display (spandrel's idea of a descriptor per
loaded model). The predictor, the tiling choice, export, evaluation, the CLI, the experiments and the benchmarks
take it. A network already in memory (a model being trained, a test's tiny model) becomes one with
`OpenedModel.from_network`.

Device names are resolved here alone (`resolve_device`): "auto" is CUDA when available, else the CPU.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nafft.errors import UserError
from nafft.models import (
    PRESETS,
    ModelConfig,
    build_model,
    enable_tlc,
    load_model,
    preferred_channels_last,
    read_metadata,
    reparameterize,
    set_memory_format,
    tlc_window,
    unwrap,
)
from nafft.models.checkpoint import TRAIN_CONFIG_KEY
from nafft.typed_config import suggest
from nafft.weights import CARD_KEY, DEFAULT_MODEL, bundled_models, read_card

log = logging.getLogger(__name__)

OFFICIAL_TRAIN_SIZE = 256  # NAFNet's GoPro recipes train on 256x256 crops
# A network without a NAFNet config (a test's nn.Identity) is costed as NAFNet-w32 for memory estimates.
FALLBACK_WIDTH, FALLBACK_EXPAND = 32, 2

OFFICIAL_WEIGHTS_HINT = (
    "official NAFNet weights such as NAFNet-GoPro-width64.pth or NAFNet-GoPro-width32.pth, linked from the "
    "'Results and Pre-trained Models' table of https://github.com/megvii-research/NAFNet (nafft reads those .pth "
    "files as they are)"
)
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(UserError):
    """A requested device or precision that this machine cannot provide."""


class MissingCheckpointError(UserError):
    """No weights given where they are required, and no bundled default model to fall back on."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` means CUDA when available, else the CPU; an unknown name, or CUDA without a GPU, is a DeviceError."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {name}: not a device; use {DEVICE_CHOICES}") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: not supported; use {DEVICE_CHOICES}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"--device {name}: no CUDA device is available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {name}: this machine has CUDA devices 0..{count - 1}")
    return device


def train_patch_size(metadata: dict[str, str]) -> int | None:
    """The training crop size recorded in a nafft weight file's metadata, or None when it has none."""
    raw = metadata.get(TRAIN_CONFIG_KEY)
    if not raw:
        return None
    try:
        size = json.loads(raw).get("data", {}).get("patch_size")
    except (json.JSONDecodeError, AttributeError):
        return None
    return int(size) if isinstance(size, int | float) and size > 0 else None


@dataclass(eq=False)
class OpenedModel:
    """A network ready for inference and the facts about it that its users need.

    Attributes:
        network: the network in eval mode on `device` (folded when opened from a file or preset); it maps a
            (B, 3, H, W) batch in [0, 1] to its deblurred version.
        name: for display: the bundled model's or preset's name, or the file name without its suffix.
        device: the resolved device the network is on.
        kind: "bundled", "checkpoint", "preset" (untrained weights) or "network" (`from_network`).
        architecture: the architecture as trained (DO-Conv unfolded; the network's own config says "conv" once
            folded); None for a network that is not a NAFNet.
        path: the weight file, None for presets and networks.
        train_size: the training crop size that TLC's windows come from: the file's, or 256 (NAFNet's GoPro crops).
        train_size_source: "checkpoint" when the file records it, "given" for a network whose size is known,
            else "default".
        metadata: the weight file's metadata ({} for `.pth` files, presets and networks).
        card: the model card of a bundled model or of a weight file that carries one ({} otherwise).
        guard: the strength guard that `--strength auto` asks (`nafft.inference.guard`): a bundled model's own, or
            one given to `open_model`; None: auto means strength 1.
    """

    network: nn.Module
    name: str
    device: torch.device
    kind: str = "network"
    architecture: ModelConfig | None = None
    path: Path | None = None
    train_size: int = OFFICIAL_TRAIN_SIZE
    train_size_source: str = "default"
    metadata: dict[str, str] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    guard: nn.Module | None = None

    @classmethod
    def from_network(cls, network: nn.Module, device: str | torch.device = "auto", name: str = "network",
                     channels_last: bool | None = None, train_size: int | None = None) -> OpenedModel:
        """An in-memory network made ready for inference, without folding it.

        The caller's network is left as it is: when it is in training mode, on another device, or a memory format is
        asked for, a copy is made ready instead.

        Args:
            network: any module mapping (B, 3, H, W) to (B, 3, H, W); a NAFNet's padding, width and TLC are read
                from it.
            device: "auto", "cpu", "cuda", "cuda:N" or a torch.device.
            name: for display.
            channels_last: None keeps the network's own choice for the device; True or False force one.
            train_size: the training crop size, when known (for TLC switched on later).
        """
        device = resolve_device(device)
        param = next(network.parameters(), None)
        changes = (channels_last is not None or any(m.training for m in network.modules())
                   or (param is not None and param.device != device))
        ready = (copy.deepcopy(network) if changes else network).eval().to(device)
        if changes:
            # weights in the format chosen for this device (a copy moved to CUDA keeps no CPU channels_last weights)
            set_memory_format(ready, channels_last if channels_last is not None
                              else getattr(unwrap(ready), "channels_last", None))
        inner = unwrap(ready)
        config = getattr(inner, "config", None)
        recorded = getattr(inner, "tlc_train_size", None)  # set by enable_tlc
        size = train_size or (recorded[0] if recorded else None)
        return cls(ready, name, device, "network", config if isinstance(config, ModelConfig) else None,
                   train_size=int(size or OFFICIAL_TRAIN_SIZE), train_size_source="given" if size else "default")

    @property
    def config(self) -> ModelConfig | None:
        """The network's own architecture (DO-Conv folded once opened), None when it is not a NAFNet."""
        config = getattr(unwrap(self.network), "config", None)
        return config if isinstance(config, ModelConfig) else None

    @property
    def padding_multiple(self) -> int:
        """The network pads its input to a multiple of this (2 ** levels for NAFNet; 1: any size)."""
        return int(getattr(unwrap(self.network), "padder_size", 1))

    @property
    def width(self) -> int:
        """Channels at full resolution (the memory a forward pass needs scales with it)."""
        return self.config.width if self.config is not None else FALLBACK_WIDTH

    @property
    def expand(self) -> int:
        """The largest channel expansion inside a block (the widest activation is width x expand)."""
        config = self.config
        return max(config.dw_expand, config.ffn_expand) if config is not None else FALLBACK_EXPAND

    @property
    def tlc(self) -> bool:
        """Whether TLC local pooling is on."""
        return self.tlc_window is not None

    @property
    def tlc_window(self) -> tuple[int, int] | None:
        """The largest TLC window (the full-resolution one) as (height, width); None under global pooling."""
        return tlc_window(self.network)

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions inference may run in on this device: float16 needs CUDA (on CPUs it is slower than
        float32); FFT blocks compute in float32 either way."""
        return ("float32", "float16") if self.device.type == "cuda" else ("float32",)

    @property
    def channels_last(self) -> bool:
        """Whether the network runs in channels_last memory on its device."""
        choice = getattr(unwrap(self.network), "channels_last", None)
        return preferred_channels_last(self.device) if choice is None else bool(choice)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def trained(self) -> bool:
        """False for a preset's untrained weights."""
        return self.kind != "preset"

    def describe(self) -> str:
        """One line for the console: name, architecture, TLC and device."""
        tlc = f"TLC on (train size {self.train_size}, {self.train_size_source})" if self.tlc else "TLC off"
        cfg = self.config
        what = (f"width {cfg.width}, {sum(cfg.enc_blocks)} encoder blocks, {cfg.attention}, skip {cfg.skip}"
                if cfg is not None else type(self.network).__name__)
        untrained = " (untrained preset)" if self.kind == "preset" else ""
        guard = "; strength guard (--strength auto)" if self.guard is not None else ""
        return f"{self.name}{untrained}: {what}; {tlc}{guard}; device {self.device}"


def _bundled() -> dict[str, Path]:
    return {m.name: m.path for m in bundled_models()}


def open_model(source: str | Path | None = None, device: str | torch.device = "auto", tlc: bool = True,
               channels_last: bool | None = None, guard: bool | str | Path | None = None) -> OpenedModel:
    """Open weights for inference.

    Args:
        source: a weight file (nafft safetensors or official NAFNet `.pth`), a bundled model's name (`nafft
            models`), or a preset name (untrained weights); None: the bundled default model.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N" or a torch.device; resolved before anything is
            read, so a missing GPU is reported first.
        tlc: TLC local pooling with the training crop size: the file's (`data.patch_size` of the training config
            nafft stores), or 256 for official files and presets (NAFNet's GoPro crops); False: global pooling.
        channels_last: None (default): channels_last on the CPU, where it is about twice as fast, NCHW on CUDA; True
            or False force one.
        guard: the strength guard for `--strength auto`: None or True (default) opens a bundled model's own guard
            (other weights have none), a path opens that guard file, False opens none.

    Raises:
        UserError: a device this machine lacks, a name that is neither a file, a bundled model nor a preset, a file
            that cannot be read safely (files are never unpickled into code), or no weights at all.
    """
    device = resolve_device(device)
    bundled = _bundled()
    if source is None:
        if DEFAULT_MODEL not in bundled:
            raise MissingCheckpointError(
                "--checkpoint is required (this installation has no bundled default model): pass weights from "
                f"`nafft train`, or {OFFICIAL_WEIGHTS_HINT}"
            )
        source = DEFAULT_MODEL
    spec = str(source)
    path = Path(source)
    metadata: dict[str, str] = {}
    # A missing file named like one ("runs/x/best.safetensors") is reported as a missing file, not an unknown name.
    named_like_a_file = isinstance(source, Path) or bool(path.suffix) or len(path.parts) > 1
    if path.is_file() or (named_like_a_file and spec not in bundled and spec not in PRESETS):
        kind, name = "checkpoint", path.stem
        network = load_model(path)  # a missing file is a one-line CheckpointError naming it
        metadata = read_metadata(path)
    elif spec in bundled:
        kind, name, path = "bundled", spec, bundled[spec]
        network = load_model(path)
        metadata = read_metadata(path)
    elif spec in PRESETS:
        kind, name, path = "preset", spec, None
        network = build_model(spec).eval()
    else:
        there = f"a bundled model ({', '.join(bundled)}), " if bundled else ""
        raise UserError(f"'{spec}' is neither {there}a preset nor an existing checkpoint file"
                        f"{suggest(spec, [*bundled, *PRESETS])}")
    architecture = network.config
    reparameterize(network).eval()  # the folded convolutions are new modules
    network.requires_grad_(False)  # for inference: outputs are plain tensors (`.numpy()` works without no_grad)
    size = train_patch_size(metadata)
    size_source = "checkpoint" if size is not None else "default"
    size = size or OFFICIAL_TRAIN_SIZE
    if tlc:
        enable_tlc(network, size)
    network = network.to(device)
    set_memory_format(network, channels_last)
    card = read_card(path) if CARD_KEY in metadata else {}
    opened = OpenedModel(network, name, device, kind, architecture, path, size, size_source, metadata, card,
                         _open_guard(guard, kind, name, device))
    log.debug("opened %s", opened.describe())
    return opened


def _open_guard(guard: bool | str | Path | None, kind: str, name: str, device: torch.device) -> nn.Module | None:
    from nafft.inference.guard import load_guard
    from nafft.weights import bundled_guard

    if guard is False:
        return None
    if guard is None or guard is True:
        path = bundled_guard(name) if kind == "bundled" else None
        return load_guard(path, device) if path is not None else None
    return load_guard(guard, device)


def default_model_note(source: str | Path | None) -> str | None:
    """The line a command prints first when it falls back to the bundled default model (None when weights were
    given)."""
    if source is not None:
        return None
    bundled = {m.name: m for m in bundled_models()}.get(DEFAULT_MODEL)
    summary = bundled.card.get("summary", "") if bundled is not None else ""
    return (f"no --checkpoint: using the bundled default model {DEFAULT_MODEL}"
            + (f" ({summary})" if summary else "") + "; see `nafft models`")


def load_default_model(tlc: bool = True, name: str = DEFAULT_MODEL, device: str | torch.device = "cpu"
                       ) -> OpenedModel:
    """A bundled model opened for inference (folded, eval mode, no gradients, TLC on as it was trained), on the CPU
    unless asked:

        import nafft
        network = nafft.load_default_model().network  # (B, 3, H, W) in [0, 1] -> deblurred
        sharp = network(blurred).numpy()  # no torch.no_grad() needed

    To deblur images (PIL, numpy, tensors or files; tiled, in their bit depth), `nafft.deblur(image)` does it all.
    """
    return open_model(name, device=device, tlc=tlc)
