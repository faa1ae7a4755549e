"""An independent, deliberately straightforward NAFNet written from the paper and REFERENCE.md, used as an oracle.

It follows the official semantics in the plainest way (mean/variance LayerNorm in NCHW, pooled attention convolved
and then multiplied, TLC windows fixed by one forward pass at the training size, exactly like the official
NAFNetLocal with fast_imp=False) and the official state-dict names. The benchmarks use it as the "straightforward
implementation" to compare speed against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefLayerNorm2d(nn.Module):
    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class RefLocalPool(nn.Module):
    """Global pool until `train_size` is set; then the window is fixed by the first forward (at train size)."""

    def __init__(self):
        super().__init__()
        self.train_size = None
        self.kernel = None

    def forward(self, x):
        if self.train_size is None:
            return F.adaptive_avg_pool2d(x, 1)
        th, tw = self.train_size
        if self.kernel is None:
            self.kernel = (x.shape[2] * int(th * 1.5) // th, x.shape[3] * int(tw * 1.5) // tw)
        h, w = x.shape[2:]
        if self.kernel[0] >= h and self.kernel[1] >= w:
            return F.adaptive_avg_pool2d(x, 1)
        k1, k2 = min(h, self.kernel[0]), min(w, self.kernel[1])
        integral = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
        local = (
            integral[:, :, k1:, k2:] + integral[:, :, :-k1, :-k2] - integral[:, :, :-k1, k2:] - integral[:, :, k1:, :-k2]
        ) / (k1 * k2)
        lh, lw = local.shape[2:]
        return F.pad(local, ((w - lw) // 2, (w - lw + 1) // 2, (h - lh) // 2, (h - lh + 1) // 2), mode="replicate")


class RefBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm1 = RefLayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca = nn.Sequential(RefLocalPool(), nn.Conv2d(c, c, 1))
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = RefLayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = self.conv2(self.conv1(self.norm1(inp)))
        a, b = x.chunk(2, dim=1)
        x = a * b
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        a, b = self.conv4(self.norm2(y)).chunk(2, dim=1)
        return y + self.conv5(a * b) * self.gamma


class RefNAFNet(nn.Module):
    def __init__(self, width=16, enc=(1, 1, 1, 28), middle=1, dec=(1, 1, 1, 1), img_channels=3):
        super().__init__()
        self.intro = nn.Conv2d(img_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channels, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = width
        for n in enc:
            self.encoders.append(nn.Sequential(*[RefBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, 2))
            c *= 2
        self.middle_blks = nn.Sequential(*[RefBlock(c) for _ in range(middle)])
        for n in dec:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[RefBlock(c) for _ in range(n)]))
        self.multiple = 2 ** len(enc)

    def forward(self, inp):
        h, w = inp.shape[2:]
        inp = F.pad(inp, (0, (self.multiple - w % self.multiple) % self.multiple,
                          0, (self.multiple - h % self.multiple) % self.multiple))
        x = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for dec, up, skip in zip(self.decoders, self.ups, skips[::-1]):
            x = dec(up(x) + skip)
        return (self.ending(x) + inp)[:, :, :h, :w]

    @torch.no_grad()
    def to_local(self, train_size: int):
        """TLC as the official NAFNetLocal does it: set the train size, then one forward at that size."""
        for m in self.modules():
            if isinstance(m, RefLocalPool):
                m.train_size, m.kernel = (train_size, train_size), None
        self(torch.rand(1, self.intro.in_channels, train_size, train_size))
        return self
