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

Both SSIMs run in torch (on the CPU, or the evaluation device), float64, with separable 11-tap sums over strips of
rows that stay in the caches; `ssim_and_ssim3d` shares the filtering between the two. The tests check them against
a straightforward numpy float64 implementation (benchmarks/reference/metrics.py) to 1e-12. On a 720p image on a 2-core
CPU (two threads), SSIM-3D runs about 13x faster than it and the 2-D SSIM about 4.5x, whose numpy version was
already the same separable algorithm (benchmarks/bench_metrics.py, docs/benchmarks.md).
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
    return psnr_from_mse(float(np.mean((x - y) ** 2)))


def psnr_from_mse(mse: float, data_range: float = DATA_RANGE) -> float:
    """`10 log10(data_range^2 / mse)` in dB, `inf` for an MSE of 0: the one PSNR formula (`psnr` on 8-bit values;
    the benchmarks also on float images, data range 1, to see differences finer than 8 bits)."""
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def _pair_u8(a: Any, b: Any, device: str | torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as (C, H, W) uint8 tensors on `device` (default: the CPU)."""
    x, y = to_uint8(a), to_uint8(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} and {y.shape}")
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    device = torch.device("cpu") if device is None else torch.device(device)
    return (torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))).to(device) for v in (x, y))


def _channel_blur(channels: int) -> list[list[float]]:
    """The 11-tap Gaussian across `channels` with replicate padding, as a matrix: out[c] = sum_j M[c][j] in[j]."""
    r = WINDOW // 2
    m = [[0.0] * channels for _ in range(channels)]
    for c in range(channels):
        for t, g in enumerate(gaussian_taps().tolist()):
            m[c][min(max(c + t - r, 0), channels - 1)] += g
    return m


def _blur_axis(a: torch.Tensor, n: int, dim: int, taps: list[float], out: torch.Tensor) -> torch.Tensor:
    """Correlate `a` with the taps along `dim` into `out`, valid part only (`n` = length - 10 outputs)."""
    r = len(taps) // 2
    torch.mul(a.narrow(dim, r, n), taps[r], out=out)
    for k, g in enumerate(taps):  # one fused multiply-add pass per tap, no temporaries (4x faster than pairs)
        if k != r:
            out.add_(a.narrow(dim, k, n), alpha=g)
    return out


def _ssim_sum(moments: torch.Tensor) -> torch.Tensor:
    """Sum of the SSIM map from blurred (mu_x, mu_y, x^2 + y^2, x y) stacked on the first axis (float64)."""
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    mu_x, mu_y, sq, xy = moments
    num = torch.mul(mu_x, mu_y)
    den = torch.mul(mu_x, mu_x).addcmul_(mu_y, mu_y)
    cs_num = torch.sub(xy, num).mul_(2).add_(c2)  # 2 cov_xy + c2
    cs_den = torch.sub(sq, den).add_(c2)  # var_x + var_y + c2
    num.mul_(2).add_(c1).mul_(cs_num)
    den.add_(c1).mul_(cs_den)
    return num.div_(den).sum()


# Rows per strip: the filters make about 25 passes over their inputs, so the work goes strip by strip, each small
# enough to stay in the CPU's caches (and below glibc's mmap threshold).
_STRIP_ELEMENTS = 1 << 17


def _ssim_sums(x: torch.Tensor, y: torch.Tensor, two_d: bool, three_d: bool) -> tuple[float, float]:
    """Sums of the 2-D (valid region, per channel) and 3-D (replicate padded, channel-blurred) SSIM maps.

    Both blur the same four moments with the same separable Gaussian: the 3-D blur is the 2-D blur of the
    replicate-padded image followed by a (C, C) channel blur, and the valid 2-D map is the interior of the padded
    one before the channel blur. So the filtering is done once, strip of output rows by strip of output rows, in
    float64 (what keeps both within 1e-12 of the numpy formulation).
    """
    channels, h, w = x.shape
    r = WINDOW // 2
    taps = gaussian_taps().tolist()
    pad = r if three_d else 0  # the 2-D map alone never needs the padded border
    first, last = (0, h) if three_d else (r, h - r)  # output rows, in padded coordinates
    # strips for the CPU caches; a GPU takes the whole image at once
    rows = h if x.device.type == "cuda" else max(1, _STRIP_ELEMENTS // (channels * (w + 2 * pad)))
    f64 = dict(dtype=torch.float64, device=x.device)
    signals = torch.empty(4, channels, rows + 2 * r, w + 2 * pad, **f64)
    along_h = torch.empty(4, channels, rows, w + 2 * pad, **f64)
    blurred = torch.empty(4, channels, rows, w + 2 * pad - 2 * r, **f64)
    mixed = torch.empty_like(blurred) if three_d else None
    mix = _channel_blur(channels)
    total_2d = torch.zeros((), **f64)
    total_3d = torch.zeros((), **f64)
    for start in range(first, last, rows):
        n = min(rows, last - start)
        index = torch.clamp(torch.arange(start - r, start + n + r, device=x.device), 0, h - 1)
        sig = signals[:, :, : n + 2 * r]
        for i, v in enumerate((x, y)):
            sig[i, :, :, pad : pad + w] = v.index_select(1, index)  # uint8 rows -> float64
        if pad:  # replicate the border columns
            sig[:2, :, :, :pad] = sig[:2, :, :, pad : pad + 1]
            sig[:2, :, :, pad + w :] = sig[:2, :, :, pad + w - 1 : pad + w]
        torch.mul(sig[0], sig[0], out=sig[2]).addcmul_(sig[1], sig[1])
        torch.mul(sig[0], sig[1], out=sig[3])
        # along H first: the pass along W then runs on the n output rows only, not on the 10 extra input rows
        tall = _blur_axis(sig, n, -2, taps, along_h[:, :, :n])
        out = _blur_axis(tall, blurred.shape[-1], -1, taps, blurred[:, :, :n])
        if two_d:
            lo, hi = max(start, r) - start, min(start + n, h - r) - start  # rows of the valid map in this strip
            if hi > lo:
                total_2d += _ssim_sum(out[:, :, lo:hi, pad : out.shape[-1] - pad])
        if three_d:
            mx = mixed[:, :, :n]
            for c in range(channels):
                torch.mul(out[:, 0], mix[c][0], out=mx[:, c])
                for j in range(1, channels):
                    mx[:, c].add_(out[:, j], alpha=mix[c][j])
            total_3d += _ssim_sum(mx)
    return float(total_2d), float(total_3d)


def ssim(pred: Any, target: Any, device: str | torch.device | None = None) -> float:
    """SSIM, MATLAB/BasicSR 2-D convention (per channel, valid region, mean over channels).

    Args:
        pred, target: images as `to_uint8` reads them.
        device: where to compute (default: the CPU).

    Raises:
        ValueError: if an image is smaller than the 11x11 window.
    """
    x, y = _pair_u8(pred, target, device)
    c, h, w = x.shape
    if min(h, w) < WINDOW:
        raise ValueError(f"ssim needs images of at least {WINDOW}x{WINDOW}, got {h}x{w}")
    return _ssim_sums(x, y, True, False)[0] / (c * (h - WINDOW + 1) * (w - WINDOW + 1))


def ssim3d(pred: Any, target: Any, device: str | torch.device | None = None) -> float:
    """SSIM, NAFNet's 3-D convention: Gaussian along H, W and channels, replicate padding, mean over the map."""
    x, y = _pair_u8(pred, target, device)
    return _ssim_sums(x, y, False, True)[1] / x.numel()


def ssim_and_ssim3d(pred: Any, target: Any, device: str | torch.device | None = None) -> tuple[float, float]:
    """`(ssim(pred, target), ssim3d(pred, target))` with the filtering shared: about the cost of `ssim3d` alone.

    Raises:
        ValueError: if an image is smaller than the 11x11 window.
    """
    x, y = _pair_u8(pred, target, device)
    c, h, w = x.shape
    if min(h, w) < WINDOW:
        raise ValueError(f"ssim needs images of at least {WINDOW}x{WINDOW}, got {h}x{w}")
    s2, s3 = _ssim_sums(x, y, True, True)
    return s2 / (c * (h - WINDOW + 1) * (w - WINDOW + 1)), s3 / x.numel()


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
