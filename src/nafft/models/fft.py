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

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nafft.models.layers import conv1x1


class FFTResBlock(nn.Module):
    """`x + branch(x)`, where `branch` filters the spectrum with two 1x1 convolutions and a ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The frequency branch alone (without the residual)."""
        if _DFT_AS_MATMUL:
            return self._branch_matmul(x)
        b, c, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            # Channels last throughout: the real and imaginary parts then interleave per channel in memory, so the
            # spectrum is a channels_last (B, 2C, H, W//2+1) tensor for free and the 1x1 convolutions run on it
            # without concatenation or complex re-assembly copies.
            spec = torch.fft.rfft2(x.float().permute(0, 2, 3, 1), dim=(1, 2))  # (B, H, W//2+1, C) complex
            y = torch.view_as_real(spec).reshape(b, h, w // 2 + 1, 2 * c).permute(0, 3, 1, 2)  # re0, im0, re1, ...
            w1, w2 = self._interleaved_weights()
            y = conv1x1(conv1x1(y, w1).relu_(), w2).permute(0, 2, 3, 1)  # (B, H, W//2+1, 2C)
            spec = torch.view_as_complex(y.reshape(b, h, w // 2 + 1, c, 2))
            out = torch.fft.irfft2(spec, s=(h, w), dim=(1, 2)).permute(0, 3, 1, 2)  # (B, C, H, W), NHWC memory
        if not x.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous()  # keep the caller's memory format
        return out.to(x.dtype)

    def _interleaved_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1x1 weights, stored for [Re(C), Im(C)] concatenated channels, reordered for re/im interleaved ones."""
        n = self.conv1.weight.shape[0]
        # [r * C + c] -> [2 c + r] on both axes, as one strided copy
        return tuple(conv.weight.view(2, n // 2, 2, n // 2).permute(1, 0, 3, 2).reshape(n, n, 1, 1)
                     for conv in (self.conv1, self.conv2))

    def _branch_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """`branch` with the transforms as matrix products (see `dft_as_matmul`)."""
        h, w = x.shape[-2:]
        with torch.autocast(device_type=x.device.type, enabled=False):
            re, im = rfft2_matmul(x.float())  # (B, C, H, W//2+1) each
            y = self.conv2(F.relu(self.conv1(torch.cat([re, im], dim=1))))
            re, im = y.chunk(2, dim=1)
            out = irfft2_matmul(re, im, h, w)  # (B, C, H, W)
        return out.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return x + out if out.requires_grad or x.requires_grad else out.add_(x)


# Export mode (set by `dft_as_matmul`, used by nafft.inference.export): ONNX exporters cannot map rfft2/irfft2 to
# graphs that onnxruntime runs (the legacy exporter has no rfft2, the dynamo exporter's inverse DFT fails at run
# time), so the FFT blocks then compute the same transforms as products with cos/sin matrices built from the
# input's shape inside the graph. O(HW(H+W)) instead of O(HW log HW), exact up to float rounding.
_DFT_AS_MATMUL = False


@contextlib.contextmanager
def dft_as_matmul(enabled: bool = True) -> Iterator[None]:
    """Within the context, FFT blocks use `rfft2_matmul` / `irfft2_matmul` instead of torch.fft."""
    global _DFT_AS_MATMUL
    previous = _DFT_AS_MATMUL
    _DFT_AS_MATMUL = enabled
    try:
        yield
    finally:
        _DFT_AS_MATMUL = previous


def _dft_phase(rows: int, cols: int, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2 pi (i j mod n) / n for i < rows, j < cols; the modulo keeps the angles small and exact."""
    i = torch.arange(rows, device=like.device)
    j = torch.arange(cols, device=like.device)
    angle = ((i[:, None] * j[None, :]) % n).to(like.dtype) * (2 * math.pi) / n  # (rows, cols)
    return torch.cos(angle), torch.sin(angle)


def rfft2_matmul(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of `torch.fft.rfft2(x, norm="backward")` for real (..., H, W) `x`."""
    h, w = x.shape[-2:]
    cos_w, sin_w = _dft_phase(w, w // 2 + 1, w, x)  # (W, W//2+1)
    cos_h, sin_h = _dft_phase(h, h, h, x)  # (H, H), symmetric
    re1, im1 = x @ cos_w, -(x @ sin_w)  # along W: e^{-i theta} = cos - i sin
    return cos_h @ re1 + sin_h @ im1, cos_h @ im1 - sin_h @ re1  # along H


def irfft2_matmul(re: torch.Tensor, im: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="backward")` for (..., H, W//2+1) inputs.

    As pocketfft does, the imaginary parts of the zero and Nyquist frequencies along W are ignored (their sines
    vanish), and every other half-spectrum column counts twice (Hermitian symmetry).
    """
    cos_h, sin_h = _dft_phase(h, h, h, re)
    re2 = (cos_h @ re - sin_h @ im) / h  # along H: e^{+i theta} = cos + i sin
    im2 = (sin_h @ re + cos_h @ im) / h
    cos_w, sin_w = _dft_phase(w // 2 + 1, w, w, re)  # (W//2+1, W)
    col = torch.arange(w // 2 + 1, device=re.device)
    twice = 2.0 - (col == 0).to(re.dtype) - (2 * col == w).to(re.dtype)  # 1 for DC (and Nyquist), else 2
    return ((re2 * twice) @ cos_w - (im2 * twice) @ sin_w) / w


SKIPS: dict[str, type[nn.Module] | None] = {
    "identity": None,
    "fft": FFTResBlock,
}
