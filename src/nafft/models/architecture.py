"""The architecture of one NAFNet-family model as a typed, frozen config, and the named presets.

Presets are architecture only; losses and schedules belong to training configs (configs/*.yaml).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nafft.errors import ConfigError
from nafft.models.attention import ATTENTIONS, GATES
from nafft.models.conv import CONVS
from nafft.models.fft import SKIPS
from nafft.typed_config import from_dict, suggest


def _check_choice(field: str, value: str, valid) -> None:
    if value not in valid:
        names = ", ".join(sorted(valid))
        raise ValueError(f"{field}: unknown name '{value}'{suggest(value, valid)}; valid: {names}")


@dataclass(frozen=True)
class ModelConfig:
    """A NAFNet U-Net and its variation points.

    Attributes:
        width: channels at full resolution; doubled at every level.
        enc_blocks: NAF blocks per encoder level (the number of levels is its length).
        middle_blocks: NAF blocks at the lowest resolution.
        dec_blocks: NAF blocks per decoder level, from the lowest resolution up; same length as `enc_blocks`.
        img_channels: image channels in and out.
        dw_expand: channel expansion of the block's depthwise branch.
        ffn_expand: channel expansion of the block's feed-forward branch.
        attention: channel attention, "sca" (NAFNet) or "eca" (ECA-Net 1-D conv).
        attention_gate: "none" (NAFNet style) or "sigmoid" (ECA-Net / SE style) on the attention.
        eca_kernel: fixed ECA kernel size; None picks ECA-Net's adaptive odd size per level.
        conv: the depthwise 3x3 convolution, "conv" or "doconv" (folded away by `reparameterize`).
        skip: module on every encoder->decoder skip, "identity" or "fft" (FFT residual block).
        block_fft: add an FFT branch inside every NAF block (FNAFNet style), parallel to the spatial branch.
    """

    width: int = 32
    enc_blocks: tuple[int, ...] = (1, 1, 1, 28)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)
    img_channels: int = 3
    dw_expand: int = 2
    ffn_expand: int = 2
    attention: str = "sca"
    attention_gate: str = "none"
    eca_kernel: int | None = None
    conv: str = "conv"
    skip: str = "identity"
    block_fft: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc_blocks", tuple(self.enc_blocks))
        object.__setattr__(self, "dec_blocks", tuple(self.dec_blocks))
        for name in ("width", "img_channels", "dw_expand", "ffn_expand"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dw_expand", "ffn_expand"):
            if (self.width * getattr(self, name)) % 2:
                raise ValueError(f"{name}: width * {name} must be even for the SimpleGate")
        if self.middle_blocks < 0 or any(n < 0 for n in self.enc_blocks + self.dec_blocks):
            raise ValueError("block counts must not be negative")
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(
                f"enc_blocks and dec_blocks must have the same length (levels), got {len(self.enc_blocks)} "
                f"and {len(self.dec_blocks)}"
            )
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("attention_gate", self.attention_gate, GATES)
        _check_choice("conv", self.conv, CONVS)
        _check_choice("skip", self.skip, SKIPS)
        if self.eca_kernel is not None and (self.eca_kernel < 1 or self.eca_kernel % 2 == 0):
            raise ValueError(f"eca_kernel must be a positive odd number, got {self.eca_kernel}")

    @property
    def levels(self) -> int:
        return len(self.enc_blocks)

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


_SIZES = {
    "w32": ModelConfig(width=32, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "w64": ModelConfig(width=64, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "small": ModelConfig(width=16, enc_blocks=(1, 1, 1, 2), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
}

# The notes' variants (shared/REFERENCE.md). v3 cuts the last encoder stage: 28 -> 12 blocks at the paper sizes,
# 2 -> 1 at the CPU size.
_VARIANTS = {
    "nafnet": {},
    "nafft-v1": {"attention": "eca"},
    "nafft-v2": {"attention": "eca", "skip": "fft"},
    "nafft-v3": {"attention": "eca", "skip": "fft", "conv": "doconv", "last_encoder": {"w32": 12, "w64": 12, "small": 1}},
    "nafft-v4": {"attention": "eca", "skip": "fft", "conv": "doconv"},
}


def _build_presets() -> dict[str, ModelConfig]:
    presets = {}
    for variant, changes in _VARIANTS.items():
        for size, base in _SIZES.items():
            fields = {k: v for k, v in changes.items() if k != "last_encoder"}
            if "last_encoder" in changes:
                fields["enc_blocks"] = base.enc_blocks[:-1] + (changes["last_encoder"][size],)
            presets[f"{variant}-{size}"] = base.replace(**fields)
    return presets


PRESETS: dict[str, ModelConfig] = _build_presets()


def resolve_config(spec: str | ModelConfig | dict) -> ModelConfig:
    """A ModelConfig from a preset name, a ModelConfig, or a mapping of its fields (optionally with `preset`)."""
    if isinstance(spec, ModelConfig):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ConfigError(f"unknown model preset '{spec}'{suggest(spec, PRESETS)}; valid: {', '.join(PRESETS)}")
        return PRESETS[spec]
    if isinstance(spec, dict):
        fields = dict(spec)
        preset = fields.pop("preset", None)
        if preset is not None:
            base = resolve_config(preset)
            fields = {**dataclasses.asdict(base), **fields}
        return from_dict(ModelConfig, fields, "model")
    raise TypeError(f"expected a preset name, ModelConfig or dict, got {type(spec).__name__}")
