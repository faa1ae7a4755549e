"""Restoration losses and their weighted sum.

Every loss takes `pred` and `target` of shape (B, C, H, W) with values in [0, 1] and returns a scalar. The
combined loss computes every term in float32, whatever the autocast precision of the forward pass: the FFT terms
need it (half-precision FFTs only take power-of-two sizes and lose the small spectral differences) and the PSNR
loss takes the log of a small mean squared error.

- L1: `mean |pred - target|`.
- PSNR loss (NAFNet): `10 / ln(10) * log(mse_i + 1e-8)` per image i (mse over C, H, W), averaged over the batch,
  i.e. minus the PSNR of images in [0, 1]; it weights every image's error relatively, not absolutely.
- Charbonnier: `mean sqrt((pred - target)^2 + eps^2)`, eps 1e-3.
- FFT: on `D = rfft2(pred - target)` (= rfft2(pred) - rfft2(target), the transform is linear), either
  "modulus": `mean |D|` (DeepRFT, FNAFNet) or "realimag": `mean` of |Re D| and |Im D| stacked (MIMO-UNet).
- Edge: `mean |LoG * (pred - target)|`, the L1 distance of Laplacian-of-Gaussian responses (replicate padding),
  the edge loss the notes proposed and never tried.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

_TEN_OVER_LN10 = 10.0 / math.log(10.0)


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """NAFNet's PSNR loss: minus the mean per-image PSNR (data range 1), with `eps` inside the log."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)  # (B,)
    return _TEN_OVER_LN10 * torch.log(mse + eps).mean()


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def fft_loss(
    pred: torch.Tensor, target: torch.Tensor, mode: str = "modulus", norm: str = "backward"
) -> torch.Tensor:
    """Frequency-domain L1 on the 2-D real FFT of the difference, in float32.

    Args:
        mode: "modulus" (mean modulus of the complex difference) or "realimag" (mean absolute real and
            imaginary parts).
        norm: the `torch.fft.rfft2` normalisation ("backward" = unnormalised, as the references use).
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        diff = torch.fft.rfft2((pred.float() - target.float()), norm=norm)  # (B, C, H, W//2+1) complex
        if mode == "modulus":
            return diff.abs().mean()
        if mode == "realimag":
            return torch.view_as_real(diff).abs().mean()
    raise ValueError(f"fft loss mode must be 'modulus' or 'realimag', got '{mode}'")


def log_kernel(sigma: float) -> torch.Tensor:
    """The Laplacian-of-Gaussian kernel, side `2 * ceil(3 * sigma) + 1`, shifted to sum to exactly 0.

    `LoG(x, y) = -1 / (pi sigma^4) * (1 - r^2 / (2 sigma^2)) * exp(-r^2 / (2 sigma^2))`, r^2 = x^2 + y^2; the
    zero sum makes flat regions respond with 0 despite the truncation.
    """
    radius = math.ceil(3 * sigma)
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    q = r2 / (2 * sigma * sigma)
    kernel = -(1 - q) * torch.exp(-q) / (math.pi * sigma**4)
    return (kernel - kernel.mean()).to(torch.float32)


def edge_loss(pred: torch.Tensor, target: torch.Tensor, sigma: float = 1.0, kernel: torch.Tensor | None = None):
    """`mean |LoG * (pred - target)|` per channel with replicate padding; `kernel` overrides `log_kernel(sigma)`."""
    if kernel is None:
        kernel = log_kernel(sigma)
    channels = pred.shape[1]
    k = kernel.to(device=pred.device, dtype=torch.float32)
    weight = k.expand(channels, 1, *k.shape)  # (C, 1, K, K), depthwise
    pad = k.shape[-1] // 2
    with torch.autocast(device_type=pred.device.type, enabled=False):
        diff = F.pad(pred.float() - target.float(), (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(diff, weight, groups=channels).abs().mean()


class CombinedLoss(nn.Module):
    """The weighted sum of the enabled losses; `forward` returns `(total, {name: term})` with each term detached
    and unweighted, for logging.

    Args:
        weights: loss name ("l1", "psnr", "charbonnier", "fft", "edge") -> weight; zero weights are dropped.
    """

    NAMES = ("l1", "psnr", "charbonnier", "fft", "edge")

    def __init__(
        self,
        weights: Mapping[str, float],
        fft_mode: str = "modulus",
        fft_norm: str = "backward",
        charbonnier_eps: float = 1e-3,
        edge_sigma: float = 1.0,
    ):
        super().__init__()
        unknown = set(weights) - set(self.NAMES)
        if unknown:
            raise ValueError(f"unknown loss {sorted(unknown)}; valid: {', '.join(self.NAMES)}")
        if fft_mode not in ("modulus", "realimag"):
            raise ValueError(f"fft loss mode must be 'modulus' or 'realimag', got '{fft_mode}'")
        self.weights = {name: float(w) for name, w in weights.items() if w}
        if not self.weights:
            raise ValueError("every loss weight is 0")
        self.fft_mode = fft_mode
        self.fft_norm = fft_norm
        self.charbonnier_eps = charbonnier_eps
        self.register_buffer("log_kernel", log_kernel(edge_sigma), persistent=False)

    @classmethod
    def from_config(cls, config) -> CombinedLoss:
        """From a `nafft.engine.config.LossConfig`."""
        return cls(
            config.weights(),
            fft_mode=config.fft_mode,
            fft_norm=config.fft_norm,
            charbonnier_eps=config.charbonnier_eps,
            edge_sigma=config.edge_sigma,
        )

    def term(self, name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name == "l1":
            return l1_loss(pred, target)
        if name == "psnr":
            return psnr_loss(pred, target)
        if name == "charbonnier":
            return charbonnier_loss(pred, target, self.charbonnier_eps)
        if name == "fft":
            return fft_loss(pred, target, self.fft_mode, self.fft_norm)
        if name == "edge":
            return edge_loss(pred, target, kernel=self.log_kernel)
        raise ValueError(f"unknown loss '{name}'")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred = pred.float()
            target = target.float()
            total = pred.new_zeros(())
            parts = {}
            for name, weight in self.weights.items():
                value = self.term(name, pred, target)
                parts[name] = value.detach()
                total = total + weight * value
        return total, parts
