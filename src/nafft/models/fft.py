"""FFT residual blocks (DeepRFT: Mao et al., "Intriguing Findings of Frequency Selection for Image Deblurring",
AAAI 2023).

`y = x + irfft2(conv1x1(relu(conv1x1([Re, Im](rfft2(x))))))`: a per-frequency channel mixing that sees the whole
image at once, which is what motion blur (a global convolution) needs. nafft uses it on every encoder->decoder skip
(`skip="fft"`, the notes' variant 2) or inside each NAF block (`block_fft=True`, as FNAFNet does). What differs from
DeepRFT: no spatial branch beside it (the NAF blocks are the spatial path), 1x1 layers are plain convolutions (the
seed's 1x1 DO-Conv inherited padding=1 and shifted every frequency by two bins), and the transform always runs in
float32, also under mixed precision (half-precision FFTs only support power-of-two sizes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FFTResBlock(nn.Module):
    """`x + branch(x)`, where `branch` filters the spectrum with two 1x1 convolutions and a ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The frequency branch alone (without the residual)."""
        h, w = x.shape[-2:]
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.fft.rfft2(x.float(), norm="backward")  # (B, C, H, W//2+1) complex
            y = torch.cat([spec.real, spec.imag], dim=1)  # (B, 2C, H, W//2+1)
            y = self.conv2(F.relu(self.conv1(y)))
            re, im = y.chunk(2, dim=1)
            out = torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="backward")  # (B, C, H, W)
        return out.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


SKIPS: dict[str, type[nn.Module] | None] = {
    "identity": None,
    "fft": FFTResBlock,
}
