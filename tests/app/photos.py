"""A camera-shaken photograph for the app's tests: scikit-image's cat, blurred in linear light by a shake kernel."""

import numpy as np


def shaken_photo(height: int = 240, width: int = 320, seed: int = 5) -> np.ndarray:
    """uint8 (height, width, 3): a crop of `skimage.data.chelsea()` convolved with `shake_kernel` (linear light)."""
    from scipy.signal import fftconvolve
    from skimage import data

    from nafft.data.synth.camera import srgb_decode, srgb_encode
    from nafft.data.synth.motion import shake_kernel

    kernel = shake_kernel(np.random.default_rng(seed), strength=0.5)
    k = kernel.shape[0]
    sharp = data.chelsea()[: height + k - 1, : width + k - 1]
    linear = srgb_decode(sharp.astype(np.float64) / 255.0)
    blurred = np.stack([fftconvolve(linear[..., c], kernel, mode="valid") for c in range(3)], axis=-1)
    return np.round(np.clip(srgb_encode(np.clip(blurred, 0, 1)), 0, 1) * 255).astype(np.uint8)
