"""The numpy float64 SSIMs that nafft shipped before its torch implementation, kept as the tests' reference.

Straightforward on purpose: the whole image at once, numpy's padding, the five blurred moments of the papers'
formula (mu_x, mu_y, x^2, y^2, x y). `nafft.metrics.ssim`/`ssim3d` must equal these to 1e-6 (they do to ~1e-12).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nafft.metrics import DATA_RANGE, K1, K2, WINDOW, gaussian_taps, to_uint8


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_uint8(a), to_uint8(b)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    return x.astype(np.float64), y.astype(np.float64)


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


def ssim_numpy(pred: Any, target: Any) -> float:
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


def ssim3d_numpy(pred: Any, target: Any) -> float:
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
