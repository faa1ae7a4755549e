"""Load a checkpoint ready for inference: folded, TLC set from the training patch size."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from nafft.errors import UserError
from nafft.models import NAFNet, enable_tlc, load_model, read_metadata, reparameterize, set_memory_format
from nafft.models.checkpoint import TRAIN_CONFIG_KEY

log = logging.getLogger(__name__)

OFFICIAL_TRAIN_SIZE = 256  # NAFNet's GoPro recipes train on 256x256 crops

OFFICIAL_WEIGHTS_HINT = (
    "official NAFNet weights such as NAFNet-GoPro-width64.pth or NAFNet-GoPro-width32.pth, linked from the "
    "'Results and Pre-trained Models' table of https://github.com/megvii-research/NAFNet (nafft reads those .pth "
    "files as they are)"
)


class MissingCheckpointError(UserError):
    """No checkpoint given where one is required."""


def require_checkpoint(checkpoint: str | Path | None) -> Path:
    """The checkpoint path; without one, the bundled default model's file (`nafft.weights`), or an error saying
    where weights come from when this installation has none."""
    if checkpoint is not None:
        return Path(checkpoint)
    from nafft.weights import DEFAULT_MODEL, bundled_models

    for model in bundled_models():
        if model.name == DEFAULT_MODEL:
            return model.path
    raise MissingCheckpointError(
        "--checkpoint is required (this installation has no bundled default model): pass weights from `nafft "
        f"train`, or {OFFICIAL_WEIGHTS_HINT}"
    )


def default_model_note(checkpoint: str | Path | None) -> str | None:
    """The line a command prints first when it falls back to the bundled default model (None when a checkpoint
    was given)."""
    if checkpoint is not None:
        return None
    from nafft.weights import DEFAULT_MODEL, read_card

    path = require_checkpoint(None)
    summary = read_card(path).get("summary", "")
    return (f"no --checkpoint: using the bundled default model {DEFAULT_MODEL}"
            + (f" ({summary})" if summary else "") + "; see `nafft models`")


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


@dataclass
class LoadedModel:
    """A model ready for inference and how it was set up.

    Attributes:
        model: the folded NAFNet in eval mode (CPU).
        path: the checkpoint.
        tlc: whether TLC local pooling is on.
        train_size: the training patch size used for TLC (from the file, or 256 for files without one).
        train_size_source: "checkpoint" or "default".
        metadata: the file's metadata ({} for .pth files).
    """

    model: NAFNet
    path: Path
    tlc: bool
    train_size: int
    train_size_source: str
    metadata: dict[str, str]

    def describe(self) -> str:
        cfg = self.model.config
        tlc = f"TLC on (train size {self.train_size}, {self.train_size_source})" if self.tlc else "TLC off"
        return f"{self.path.name}: width {cfg.width}, {sum(cfg.enc_blocks)} encoder blocks, {cfg.attention}, skip {cfg.skip}; {tlc}"


def load_for_inference(checkpoint: str | Path, tlc: bool = True, channels_last: bool | None = None) -> LoadedModel:
    """Load weights (nafft safetensors or official .pth), fold DO-Conv and switch TLC on when asked.

    TLC needs the training patch size: nafft checkpoints record it (`data.patch_size` of the training config);
    official NAFNet files do not and were trained on 256 crops, which is also the fallback. The memory format is
    `set_memory_format(model, channels_last)`: by default channels_last on the CPU, weights included.
    """
    path = Path(checkpoint)
    model = load_model(path)
    reparameterize(model)
    set_memory_format(model, channels_last)
    metadata = read_metadata(path)
    size = train_patch_size(metadata)
    source = "checkpoint"
    if size is None:
        size, source = OFFICIAL_TRAIN_SIZE, "default"
    if tlc:
        enable_tlc(model, size)
    loaded = LoadedModel(model, path, tlc, size, source, metadata)
    log.debug("model %s", loaded.describe())
    return loaded
