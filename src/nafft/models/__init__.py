"""The NAFNet / NAFFT-Net model family: one composable U-Net, presets, conversion and checkpoints."""

from nafft.models.architecture import PRESETS, ModelConfig, resolve_config
from nafft.models.attention import ATTENTIONS, eca_kernel_size
from nafft.models.checkpoint import (
    infer_config,
    load_matching,
    load_model,
    read_metadata,
    read_state_dict,
    save_model,
)
from nafft.models.conv import CONVS, DOConv2d
from nafft.models.convert import (
    disable_tlc,
    enable_tlc,
    preferred_channels_last,
    reparameterize,
    set_memory_format,
    tlc_window,
    unwrap,
)
from nafft.models.fft import SKIPS, FFTResBlock
from nafft.models.nafnet import NAFBlock, NAFNet, build_model

__all__ = [
    "ATTENTIONS",
    "CONVS",
    "PRESETS",
    "SKIPS",
    "DOConv2d",
    "FFTResBlock",
    "ModelConfig",
    "NAFBlock",
    "NAFNet",
    "build_model",
    "disable_tlc",
    "eca_kernel_size",
    "enable_tlc",
    "infer_config",
    "load_matching",
    "load_model",
    "preferred_channels_last",
    "read_metadata",
    "read_state_dict",
    "reparameterize",
    "resolve_config",
    "save_model",
    "set_memory_format",
    "tlc_window",
    "unwrap",
]
