"""One NAF block and one NAFNet U-Net for every variant (NAFNet: Chen et al., "Simple Baselines for Image
Restoration", ECCV 2022, arXiv 2204.04676).

The variation points of NAFFT-Net (attention, depthwise convolution, skip module, an FFT branch inside the block) are
chosen by name from the registries in `attention`, `conv` and `fft`. Attribute names follow the official code
(`intro`, `encoders`, `downs`, `middle_blks`, `ups`, `decoders`, `ending`; in a block `norm1`, `conv1..conv5`,
`sca`, `norm2`, `beta`, `gamma`), so official checkpoints load with `strict=True` into the `nafnet-*` presets; new
modules have new names (`eca`, `skips`, `fft`) and are absent from the baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nafft.models.architecture import ModelConfig, resolve_config
from nafft.models.attention import ATTENTIONS
from nafft.models.conv import CONVS
from nafft.models.fft import SKIPS, FFTResBlock
from nafft.models.layers import LayerNorm2d, SimpleGate, conv1x1


class NAFBlock(nn.Module):
    """`y = x + beta * conv3(att(SG(dw(conv1(LN(x))))))`, `out = y + gamma * conv5(SG(conv4(LN(y))))`.

    With `block_fft`, the FFT branch of the (unnormalised) input is added to `y` as well. `forward` is that formula;
    channels_last input takes `channels_last_block`, its faster equivalent.
    """

    def __init__(
        self,
        c: int,
        dw_expand: int = 2,
        ffn_expand: int = 2,
        attention: str = "sca",
        attention_gate: str = "none",
        eca_kernel: int | None = None,
        conv: str = "conv",
        block_fft: bool = False,
    ):
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1, bias=True)
        self.conv2 = CONVS[conv](dw, dw, 3, padding=1, groups=dw, bias=True)
        self.sg = SimpleGate()
        self.attention = attention
        self.add_module(attention, ATTENTIONS[attention](dw // 2, gate=attention_gate, kernel_size=eca_kernel))
        self.conv3 = nn.Conv2d(dw // 2, c, 1, bias=True)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1, bias=True)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1, bias=True)
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.fft = FFTResBlock(c) if block_fft else None

    @property
    def attn(self) -> nn.Module:
        return self._modules[self.attention]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.dim() == 4 and inp.is_contiguous(memory_format=torch.channels_last):
            return channels_last_block(self, inp)  # the same function, faster on the CPU (below)
        x = self.norm1(inp)
        x = self.conv2(self.conv1(x))  # 1x1 expansion, 3x3 depthwise
        x = self.sg(x)
        x = self.conv3(self.attn(x))  # x * attention(x), 1x1 back to c channels
        y = torch.addcmul(inp, x, self.beta)  # inp + x * beta
        if self.fft is not None:
            y = y + self.fft.branch(inp)
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))  # the feed-forward half
        return torch.addcmul(y, x, self.gamma)  # y + x * gamma


# ------------------------------------------------------------------------------------------- the fast path
# Why it exists: on the CPU a NAFNet forward in channels_last memory takes about half the NCHW time (oneDNN
# convolutions; benchmarks/bench_models.py), and this path also saves whole passes over the features by folding
# beta, gamma and a global attention into the 1x1 weights. It computes `NAFBlock.forward`'s function up to float
# rounding (tests/models/test_nafnet.py: block by block, whole networks with and without TLC, gradients).


def channels_last_block(block: NAFBlock, inp: torch.Tensor) -> torch.Tensor:
    """`block(inp)` for channels_last `inp`, in fewer passes over memory.

    beta and gamma scale the weights of conv3 and conv5 instead of their outputs, and a global channel attention
    (B, C, 1, 1) scales conv3's input channels (its weights, image by image) instead of the features. On the CPU
    the 1x1 convolutions go to oneDNN directly (see `layers.conv1x1`).
    """
    c = inp.shape[1]
    x = block.conv2(conv1x1(block.norm1(inp), block.conv1.weight, block.conv1.bias))
    x = block.sg(x)
    att = block.attn.weights(x)
    w3 = block.conv3.weight * block.beta.view(c, 1, 1, 1)
    b3 = block.conv3.bias * block.beta.view(c)
    if att.shape[0] == 1 and att.shape[-2:] == (1, 1) and not torch.jit.is_tracing():
        w3 = w3 * att.view(1, -1, 1, 1)  # x * att, folded into the weights
    else:
        x = block.attn.pool.multiply(x, att, inplace=True)  # x is the gate's fresh output
    y = add_into(conv1x1(x, w3, b3), inp, block.beta)
    if block.fft is not None:
        y = y + block.fft.branch(inp)
    x = block.sg(conv1x1(block.norm2(y), block.conv4.weight, block.conv4.bias))
    w5, b5 = block.conv5.weight * block.gamma.view(c, 1, 1, 1), block.conv5.bias * block.gamma.view(c)
    return add_into(conv1x1(x, w5, b5), y, block.gamma)


def add_into(fresh: torch.Tensor, other: torch.Tensor, *like: torch.Tensor) -> torch.Tensor:
    """`fresh + other` in the dtype that `fresh`, `other` and `like` promote to, written into `fresh` (a
    temporary of the caller's) when it already has that dtype; under autocast the residual stream then keeps
    the float32 of the plain formula instead of becoming bfloat16."""
    dtype = fresh.dtype
    for t in (other, *like):
        dtype = torch.promote_types(dtype, t.dtype)
    return fresh.add_(other) if fresh.dtype == dtype else fresh.to(dtype).add_(other)


class NAFNet(nn.Module):
    """The NAFNet U-Net: intro conv, encoder levels with strided-conv downsampling, middle blocks, decoder levels
    with 1x1 conv + PixelShuffle upsampling and additive skips, ending conv and a global residual.

    Any input size works: the input is zero-padded on the right/bottom to a multiple of `padder_size` and the
    output cropped back, as in the official code.

    Memory format: `channels_last` None (the default) runs channels_last on the CPU, where it is about twice as
    fast, and keeps the input's format elsewhere; True or False force one (`nafft.models.set_memory_format`).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

        def blocks(chan: int, count: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    NAFBlock(
                        chan,
                        dw_expand=config.dw_expand,
                        ffn_expand=config.ffn_expand,
                        attention=config.attention,
                        attention_gate=config.attention_gate,
                        eca_kernel=config.eca_kernel,
                        conv=config.conv,
                        block_fft=config.block_fft,
                    )
                    for _ in range(count)
                ]
            )

        width = config.width
        self.intro = nn.Conv2d(config.img_channels, width, 3, padding=1, bias=True)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        skip_cls = SKIPS[config.skip]
        skips = []
        chan = width
        for count in config.enc_blocks:
            self.encoders.append(blocks(chan, count))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            skips.append(nn.Identity() if skip_cls is None else skip_cls(chan))
            chan *= 2
        self.middle_blks = blocks(chan, config.middle_blocks)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for count in config.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(blocks(chan, count))
        # skips[i] sits on the output of encoders[i]; parameter-free for "identity".
        self.skips = nn.ModuleList(skips)
        self.ending = nn.Conv2d(width, config.img_channels, 3, padding=1, bias=True)
        self.padder_size = 2 ** config.levels
        self.channels_last: bool | None = None

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return F.pad(x, (0, (-w) % self.padder_size, 0, (-h) % self.padder_size))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        channels_last = inp.device.type == "cpu" if self.channels_last is None else self.channels_last
        inp = self.pad(inp).contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )
        x = self.intro(inp)
        encs = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            encs.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip, enc in zip(self.decoders, self.ups, reversed(self.skips), reversed(encs)):
            if x.is_contiguous(memory_format=torch.channels_last):
                x = F.pixel_shuffle(conv1x1(x, up[0].weight), 2)  # up(x) with the 1x1 conv on oneDNN
            else:
                x = up(x)
            x = decoder(add_into(x, skip(enc)))  # in place when it can: x is the upsampling's fresh output
        x = add_into(self.ending(x), inp)
        return x[:, :, :h, :w]

    def level_blocks(self) -> list[tuple[int, NAFBlock]]:
        """Every NAF block with its level (0 = full resolution, `levels` = the middle)."""
        levels = self.config.levels
        out = [(i, b) for i, enc in enumerate(self.encoders) for b in enc]
        out += [(levels, b) for b in self.middle_blks]
        out += [(levels - 1 - j, b) for j, dec in enumerate(self.decoders) for b in dec]
        return out


def build_model(spec) -> NAFNet:
    """A NAFNet-family model from a preset name (`nafnet-w32`, `nafft-v4-small`, ...), a ModelConfig, or a mapping
    of ModelConfig fields (optionally with `preset` as the base)."""
    return NAFNet(resolve_config(spec))
