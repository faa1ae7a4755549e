"""Small building blocks shared by every variant: channel LayerNorm and NAFNet's SimpleGate.

NAFNet (Chen et al., ECCV 2022) implements LayerNorm2d with a custom autograd Function, which blocks ONNX export;
here it is plain tensor operations with the same maths (biased variance over channels, eps 1e-6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor, with per-channel weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # In channels_last memory the channel axis is innermost, so F.layer_norm runs on a free NHWC view.
            y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
            return y.permute(0, 3, 1, 2)
        mu = x.mean(1, keepdim=True)
        centred = x - mu
        var = centred.pow(2).mean(1, keepdim=True)
        y = centred * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: (B, 2C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution of channels_last features (channels_last result).

    On the CPU it calls oneDNN directly: PyTorch sends single-threaded 1x1 convolutions to its im2col + BLAS path,
    which ran NAFNet's shapes at half oneDNN's speed on an AVX-512 AMD CPU (MKL's sgemm does not use AVX-512 there).
    """
    if x.device.type == "cpu" and x.dtype in _ONEDNN_DTYPES and torch.backends.mkldnn.is_available() \
            and torch.backends.mkldnn.enabled and not _autocast_cpu():  # autocast casts F.conv2d's inputs
        return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), 1)
    return F.conv2d(x, weight, bias)


def _autocast_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
