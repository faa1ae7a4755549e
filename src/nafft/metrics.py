"""Image quality metrics with the conventions of the deblurring papers.

All metrics compare two images on 8-bit RGB: float inputs (torch tensors or numpy arrays in [0, 1]) are clamped to
[0, 1], scaled by 255 and rounded half to even to uint8 (`nafft.data.io.quantize`, the rounding of saved images too),
as BasicSR's `tensor2img` does before NAFNet's metrics; uint8 arrays are used as they are. Torch tensors are read as (C, H, W) or (1, C, H, W); numpy arrays as (H, W, C) or (H, W). The
data range is always 255 (NAFNet switches to 1 when an 8-bit image happens to be all <= 1; we do not).

- `psnr`: `10 log10(255^2 / MSE)` with the MSE over all pixels and channels, no border crop. Identical images give
  `inf` (as BasicSR). `mean_finite` averages per-image values while leaving the infinite ones out and counting
  them, so that one identical pair does not turn a data set's mean into `inf`.
- `ssim`: the 2-D convention of the original MATLAB code and BasicSR: per channel, 11x11 Gaussian window
  (sigma 1.5, normalised), K1 = 0.01, K2 = 0.03, the SSIM map on the valid region only (5 px dropped at each border),
  then the mean over the map and the channels.
- `ssim3d`: NAFNet's default for GoPro: the same 11-tap Gaussian applied along height, width *and* the channel axis
  (an 11x11x11 separable kernel), every axis replicate-padded by 5 so that the map keeps the image size, mean over
  the whole (H, W, C) map. NAFNet evaluates it in float32 on the GPU; we use float64, which differs from it by
  float32 rounding only.

All filtering runs in float64 numpy with separable 11-tap sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

K1 = 0.01
K2 = 0.03
WINDOW = 11
SIGMA = 1.5
DATA_RANGE = 255.0


def gaussian_taps(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian window (what `cv2.getGaussianKernel(11, 1.5)` returns), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def to_uint8(image: Any) -> np.ndarray:
    """An image as a uint8 (H, W, C) or (H, W) array, rounded as the papers do (`nafft.data.io.quantize`: clamp,
    x 255 in float32 or finer, round half to even, as BasicSR's `tensor2img`).

    Args:
        image: a torch tensor (C, H, W) or (1, C, H, W) or a numpy array (H, W, C) or (H, W); floats in [0, 1]
            (clamped), or uint8.

    Raises:
        ValueError: for other dtypes or shapes.
    """
    from nafft.data.io import quantize

    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"metrics take one image at a time, got a batch of {t.shape[0]}")
            t = t[0]
        if t.ndim != 3:
            raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(t.shape)}")
        if t.dtype == torch.uint8:
            return t.cpu().permute(1, 2, 0).numpy()
        if not t.is_floating_point():
            raise ValueError(f"expected a float or uint8 tensor, got {t.dtype}")
        return quantize(t.float().cpu().permute(1, 2, 0).numpy())
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W, C) or (H, W) array, got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected a float array in [0, 1] or a uint8 array, got {arr.dtype}")
    return quantize(arr)


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_uint8(a), to_uint8(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} and {y.shape}")
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    return x.astype(np.float64), y.astype(np.float64)


def psnr(pred: Any, target: Any) -> float:
    """Peak signal-to-noise ratio in dB on 8-bit values; `inf` for identical images."""
    x, y = _pair(pred, target)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


def _filter_valid(a: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Correlate `a` with symmetric `taps` along `axis`, valid part only (length shrinks by len(taps) - 1)."""
    size = len(taps)
    n = a.shape[axis] - size + 1

    def part(k: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[axis] = slice(k, k + n)
        return a[tuple(index)]

    out = taps[size // 2] * part(size // 2)
    tmp = np.empty_like(out)
    for k in range(size // 2):  # the window is symmetric: one multiply per pair of taps
        np.add(part(k), part(size - 1 - k), out=tmp)
        tmp *= taps[k]
        out += tmp
    return out


def _ssim_map(x: np.ndarray, y: np.ndarray, blur) -> np.ndarray:
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(pred: Any, target: Any) -> float:
    """SSIM, MATLAB/BasicSR 2-D convention (per channel, valid region, mean over channels).

    Raises:
        ValueError: if an image is smaller than the 11x11 window.
    """
    x, y = _pair(pred, target)
    if min(x.shape[:2]) < WINDOW:
        raise ValueError(f"ssim needs images of at least {WINDOW}x{WINDOW}, got {x.shape[0]}x{x.shape[1]}")
    taps = gaussian_taps()

    def blur(a: np.ndarray) -> np.ndarray:
        return _filter_valid(_filter_valid(a, taps, 0), taps, 1)

    return float(_ssim_map(x, y, blur).mean())


def ssim3d(pred: Any, target: Any) -> float:
    """SSIM, NAFNet's 3-D convention: Gaussian along H, W and channels, replicate padding, mean over the map."""
    x, y = _pair(pred, target)
    taps = gaussian_taps()
    r = WINDOW // 2

    def blur(a: np.ndarray) -> np.ndarray:
        # replicate padding by 5 on every axis; separable, so pad each axis just before filtering it
        for axis in (2, 0, 1):
            pad = [(0, 0)] * 3
            pad[axis] = (r, r)
            a = _filter_valid(np.pad(a, pad, mode="edge"), taps, axis)
        return a

    return float(_ssim_map(x, y, blur).mean())


def mean_finite(values: Iterable[float]) -> tuple[float, int]:
    """The mean of the finite values and the number of non-finite ones left out.

    PSNR is `inf` for an identical pair; averaging it in would make the whole mean `inf`. The mean of no finite
    value is `nan`.
    """
    vals = [float(v) for v in values]
    finite = [v for v in vals if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else math.nan
    return mean, len(vals) - len(finite)


METRICS = {"psnr": psnr, "ssim": ssim, "ssim3d": ssim3d}
"""Name -> function, in the column order of evaluation reports."""
