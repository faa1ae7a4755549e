"""Grow a trained NAFNet to twice its width, computing the same function (Net2WiderNet, Chen et al., ICLR 2016).

A network that has run out of capacity can go on training wider without starting over: every channel of the wider
network is one of two copies of a channel of the narrow one. Copies carry the same weights on their outputs; where
a layer reads a pair of copies, the narrow weight is split between them in random shares `f` and `1 - f` (element by
element), which sums back to the narrow weight, so the function is unchanged while the two copies of the next
channel get different gradients and grow apart in training. LayerNorm statistics over channels are unchanged by
duplicating every channel, and SimpleGate's halves keep their pairing because copies sit side by side.

Used through `scripts/widen_model.py`; the widened weights are a `model.init` like any other (docs/trust.md).
"""

from __future__ import annotations

import torch
from torch import nn

from nafft.models.nafnet import NAFBlock, NAFNet


def _copies(n: int) -> torch.Tensor:
    """For 2n wide channels, the narrow channel each copies: 0, 0, 1, 1, ..."""
    return torch.arange(2 * n) // 2


def _shuffled_copies(n: int) -> torch.Tensor:
    """The same for the 2n output channels of an upsampling conv read by PixelShuffle(2) in groups of four: wide
    output channel o of the shuffle copies narrow o // 2, so its four inputs copy narrow 4 * (o // 2) + s."""
    wide = torch.arange(2 * n)
    return 4 * (wide // 8) + wide % 4


def _copy_conv(wide: nn.Conv2d, narrow: nn.Conv2d, out_map: torch.Tensor, in_map: torch.Tensor | None,
               generator: torch.Generator) -> None:
    """`wide`'s weights from `narrow`'s: outputs copied by `out_map`; inputs by `in_map` (None: the same inputs,
    or a depthwise conv), each pair of copied inputs splitting the narrow weight in random shares."""
    weight = narrow.weight.detach()[out_map]
    if in_map is not None:
        weight = weight[:, in_map].clone()
        share = torch.rand(weight[:, 0::2].shape, generator=generator) * 0.5 + 0.25
        weight[:, 0::2] *= share
        weight[:, 1::2] *= 1 - share
    wide.weight.data.copy_(weight)
    if narrow.bias is not None:
        wide.bias.data.copy_(narrow.bias.detach()[out_map])


def _copy_norm(wide: nn.Module, narrow: nn.Module, out_map: torch.Tensor) -> None:
    wide.weight.data.copy_(narrow.weight.detach()[out_map])
    wide.bias.data.copy_(narrow.bias.detach()[out_map])


def _copy_block(wide: NAFBlock, narrow: NAFBlock, c: int, generator: torch.Generator) -> None:
    dw, ffn = narrow.conv1.out_channels, narrow.conv4.out_channels
    _copy_norm(wide.norm1, narrow.norm1, _copies(c))
    _copy_conv(wide.conv1, narrow.conv1, _copies(dw), _copies(c), generator)
    _copy_conv(wide.conv2, narrow.conv2, _copies(dw), None, generator)  # depthwise: one input per output
    _copy_conv(wide.attn._modules["1"], narrow.attn._modules["1"], _copies(dw // 2), _copies(dw // 2), generator)
    _copy_conv(wide.conv3, narrow.conv3, _copies(c), _copies(dw // 2), generator)
    _copy_norm(wide.norm2, narrow.norm2, _copies(c))
    _copy_conv(wide.conv4, narrow.conv4, _copies(ffn), _copies(c), generator)
    _copy_conv(wide.conv5, narrow.conv5, _copies(c), _copies(ffn // 2), generator)
    wide.beta.data.copy_(narrow.beta.detach()[:, _copies(c)])
    wide.gamma.data.copy_(narrow.gamma.detach()[:, _copies(c)])


def widen(model: NAFNet, seed: int = 0) -> NAFNet:
    """A NAFNet of twice `model`'s width computing `model`'s function (up to float rounding), in training mode.

    Raises:
        ValueError: for variants whose layers mix neighbouring channels or have no plain form to copy (ECA, DO-Conv,
            FFT skips or branches): widen the plain NAFNet configs only.
    """
    config = model.config
    unsupported = {"attention": config.attention != "sca", "conv": config.conv != "conv",
                   "skip": config.skip != "identity", "block_fft": config.block_fft}
    if any(unsupported.values()):
        keys = ", ".join(k for k, bad in unsupported.items() if bad)
        raise ValueError(f"widen: only plain NAFNet (attention sca, conv conv, skip identity, no block_fft) can be "
                         f"widened; this model differs in {keys}")
    generator = torch.Generator().manual_seed(seed)
    wide = NAFNet(config.replace(width=2 * config.width))
    rgb = torch.arange(config.img_channels)
    _copy_conv(wide.intro, model.intro, _copies(config.width), None, generator)
    chan = config.width
    for level, count in enumerate(config.enc_blocks):
        for k in range(count):
            _copy_block(wide.encoders[level][k], model.encoders[level][k], chan, generator)
        _copy_conv(wide.downs[level], model.downs[level], _copies(2 * chan), _copies(chan), generator)
        chan *= 2
    for k in range(config.middle_blocks):
        _copy_block(wide.middle_blks[k], model.middle_blks[k], chan, generator)
    for level, count in enumerate(config.dec_blocks):
        _copy_conv(wide.ups[level][0], model.ups[level][0], _shuffled_copies(2 * chan), _copies(chan), generator)
        chan //= 2
        for k in range(count):
            _copy_block(wide.decoders[level][k], model.decoders[level][k], chan, generator)
    _copy_conv(wide.ending, model.ending, rgb, _copies(config.width), generator)
    return wide
