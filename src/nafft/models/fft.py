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

import math

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
        self._weights_cache: tuple | None = None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The frequency branch alone (without the residual), in the memory format of `x`."""
        if torch.jit.is_tracing():  # ONNX export, see `_branch_matmul`
            return self._branch_matmul(x)
        b, c, h, w = x.shape
        half = w // 2 + 1
        with torch.autocast(device_type=x.device.type, enabled=False):
            # torch.fft writes the transformed axes innermost, (B, C, H, W//2+1) in memory whatever the input's
            # format. One 2-D transpose per image puts each frequency's channels together, real and imaginary
            # parts interleaved, so the spectrum is a channels_last (B, 2C, H, W//2+1) tensor for the 1x1s.
            spec = _transposed(torch.fft.rfft2(x.float()).reshape(b, c, h * half))  # (B, H*(W//2+1), C)
            y = torch.view_as_real(spec).view(b, h, half, 2 * c).permute(0, 3, 1, 2)  # re0, im0, re1, ...
            w1, w2 = self._interleaved_weights()
            y = conv1x1(conv1x1(y, w1).relu_(), w2)
            spec = torch.view_as_complex(y.permute(0, 2, 3, 1).reshape(b, h, half, c, 2))  # (B, H, W//2+1, C)
            # From this layout irfft2's two steps (along H, then along W) read their batch axes as one strided
            # axis each and copy nothing.
            out = torch.fft.irfft2(spec.permute(0, 3, 1, 2), s=(h, w))  # (B, C, H, W), contiguous
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                # the caller's format: a mixed-format residual sum ran 3-6x slower than this transpose and a plain sum
                out = _transposed(out.view(b, c, h * w)).view(b, h, w, c).permute(0, 3, 1, 2)
        return out.to(x.dtype)

    def _interleaved_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1x1 weights, stored for [Re(C), Im(C)] concatenated channels, reordered for re/im interleaved ones.

        Without autograd the reordered pair is kept until the weights change (in place or replaced): for the wide
        levels the reordering cost as much as a transform.
        """
        w1, w2 = self.conv1.weight, self.conv2.weight
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            return _interleaved(w1), _interleaved(w2)
        key = (w1.data_ptr(), w1._version, w2.data_ptr(), w2._version, w1.dtype, w1.device)
        if getattr(self, "_weights_cache", None) is None or self._weights_cache[0] != key:
            self._weights_cache = (key, _interleaved(w1), _interleaved(w2))
        return self._weights_cache[1:]

    def _branch_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """`branch` with the transforms as matrix products, built from the input's shape inside the graph.

        Taken while tracing (ONNX export, as TLC's pooling and the attention do): ONNX exporters cannot map
        rfft2/irfft2 to graphs that onnxruntime runs (the legacy exporter has no rfft2, the dynamo exporter's inverse
        DFT fails at run time). O(HW(H+W)) instead of O(HW log HW), exact up to float rounding.
        """
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


def _interleaved(weight: torch.Tensor) -> torch.Tensor:
    """A (2C, 2C, 1, 1) weight with both axes reordered from [r * C + c] to [2 c + r], as one strided copy."""
    n = weight.shape[0]
    return weight.view(2, n // 2, 2, n // 2).permute(1, 0, 3, 2).reshape(n, n, 1, 1)


def _transposed(a: torch.Tensor) -> torch.Tensor:
    """(B, M, N) -> contiguous (B, N, M). On the CPU image by image, which PyTorch copies with its blocked 2-D
    transpose (a batched permute copy ran 1.4-4x slower on these shapes)."""
    b, m, n = a.shape
    if a.device.type != "cpu":
        return a.transpose(1, 2).contiguous()
    out = torch.empty(b, n, m, dtype=a.dtype)
    for i in range(b):
        out[i].copy_(a[i].t())
    return out


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
