"""Channel attention for the NAF block: NAFNet's simplified channel attention (SCA) and ECA.

- `sca`: NAFNet (Chen et al., ECCV 2022): `x * conv1x1(avgpool(x))`, no sigmoid. Children are named `0` (pool) and
  `1` (conv) so that official checkpoints' `sca.1.weight/bias` load unchanged.
- `eca`: ECA-Net (Wang et al., CVPR 2020): a 1-D convolution across the channels of the pooled vector,
  `Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)`, k adaptive to the channel count. Unlike ECA-Net, the default
  has no sigmoid (NAFNet's finding that the gate is unnecessary); `gate="sigmoid"` restores it. Unlike the seed
  code, the attention multiplies the features instead of replacing them, and the convolution slides over the
  channel axis (the seed's `Conv1d(C, C, k)` on a length-1 sequence is a dense C x C layer).

Both work with TLC local pooling: the statistics are then (B, C, h, w) and the channel mixing runs per pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nafft.models.pooling import AvgPool

GATES = ("none", "sigmoid")


def _gate(x: torch.Tensor, gate: str) -> torch.Tensor:
    return torch.sigmoid(x) if gate == "sigmoid" else x


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's adaptive kernel size: |log2(C) + b| / gamma, made odd, at least 3 (3, 3, 5, 5, 5 for 32..512)."""
    t = int(abs(math.log2(channels) + b) / gamma)
    return max(t if t % 2 else t + 1, 3)


class SimplifiedChannelAttention(nn.Module):
    """`x * conv1x1(pool(x))` (optionally sigmoid-gated)."""

    def __init__(self, channels: int, gate: str = "none", kernel_size: int | None = None):
        super().__init__()
        self.add_module("0", AvgPool())
        self.add_module("1", nn.Conv2d(channels, channels, 1, bias=True))
        self.gate = gate

    @property
    def pool(self) -> AvgPool:
        return self._modules["0"]

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (gated) attention: (B, C, 1, 1), or (B, C, h, w) valid-position statistics under TLC."""
        return _gate(self._modules["1"](self.pool(x)), self.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool.multiply(x, self.weights(x))


class EfficientChannelAttention(nn.Module):
    """`x * conv1d_over_channels(pool(x))` with ECA-Net's adaptive odd kernel size."""

    def __init__(self, channels: int, gate: str = "none", kernel_size: int | None = None):
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        if k % 2 == 0:
            raise ValueError(f"eca kernel size must be odd, got {k}")
        self.pool = AvgPool()
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.gate = gate

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (gated) attention: (B, C, 1, 1), or (B, C, h, w) valid-position statistics under TLC."""
        stats = self.pool(x)
        b, c, h, w = stats.shape
        k = self.conv.kernel_size[0]
        if h == 1 and w == 1 and not torch.jit.is_tracing():  # a trace must not depend on the statistics' size
            att = self.conv(stats.view(b, 1, c)).view(b, c, 1, 1)
        else:
            # Per-pixel channel convolution: the same 1-D kernel as a (k, 1, 1) 3-D kernel over (B, 1, C, h, w).
            weight = self.conv.weight.view(1, 1, k, 1, 1)
            att = F.conv3d(stats.unsqueeze(1), weight, padding=((k - 1) // 2, 0, 0)).squeeze(1)
        return _gate(att, self.gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool.multiply(x, self.weights(x))


ATTENTIONS: dict[str, type[nn.Module]] = {
    "sca": SimplifiedChannelAttention,
    "eca": EfficientChannelAttention,
}
