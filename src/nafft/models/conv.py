"""Convolutions for the NAF block's depthwise 3x3: a plain convolution or DO-Conv.

DO-Conv (Cao et al., "DO-Conv: Depthwise Over-parameterized Convolutional Layer", arXiv 2006.12030) composes the
kernel from a conventional weight W (out, in/groups, D_mul) and a depthwise kernel D (in, M*N, D_mul), zero
initialised, plus a fixed identity D_diag, so that at initialisation the layer equals a plain convolution with kernel
W. The extra parameters only change the optimisation; `fold()` turns the layer into one `nn.Conv2d` with the
composed kernel for inference. What differs from the reference code: the fold is written per group, so it is
correct for depthwise layers (the reference fold cannot fold them), and a 1x1 layer has no D at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class DOConv2d(nn.Module):
    """Depthwise over-parameterized 2-D convolution; `fold()` gives the equivalent `nn.Conv2d`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        d_mul: int | None = None,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}->{out_channels} are not divisible by groups={groups}")
        m, n = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = (m, n), stride, padding, groups
        self.d_mul = d_mul or m * n
        if self.d_mul < m * n:
            raise ValueError(f"d_mul must be at least M*N={m * n}, got {self.d_mul}")
        self.W = nn.Parameter(torch.empty(out_channels, in_channels // groups, self.d_mul))
        init.kaiming_uniform_(self.W, a=math.sqrt(5))
        if m * n > 1:
            self.D = nn.Parameter(torch.zeros(in_channels, m * n, self.d_mul))
            eye = torch.eye(m * n).unsqueeze(0).repeat(in_channels, 1, self.d_mul // (m * n))
            extra = self.d_mul % (m * n)
            d_diag = torch.cat([eye, torch.zeros(in_channels, m * n, extra)], dim=2) if extra else eye
            self.register_buffer("D_diag", d_diag, persistent=False)  # derivable, so not in the state dict
        else:
            self.D = None
        if bias:
            bound = 1 / math.sqrt((in_channels // groups) * self.d_mul)
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        else:
            self.bias = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, groups={self.groups}, d_mul={self.d_mul}"
        )

    def composed_weight(self) -> torch.Tensor:
        """The equivalent plain kernel, (out, in/groups, M, N)."""
        m, n = self.kernel_size
        g, out, cin = self.groups, self.out_channels, self.in_channels
        if self.D is None:
            return self.W.view(out, cin // g, m, n)
        d = (self.D + self.D_diag).view(g, cin // g, m * n, self.d_mul)  # (G, in/G, MN, D_mul)
        w = self.W.view(g, out // g, cin // g, self.d_mul)  # (G, out/G, in/G, D_mul)
        return torch.einsum("gims,gois->goim", d, w).reshape(out, cin // g, m, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.composed_weight(), self.bias, self.stride, self.padding, 1, self.groups)

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
            bias=self.bias is not None,
        ).to(device=self.W.device, dtype=self.W.dtype)
        conv.weight.copy_(self.composed_weight())
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv


CONVS: dict[str, type[nn.Module]] = {
    "conv": nn.Conv2d,
    "doconv": DOConv2d,
}
