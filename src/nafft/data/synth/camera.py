"""What a camera does to the light after the blur: exposure and clipping, sensor noise, a tone curve, 8 bits and
JPEG. Following RSBlur (Rim et al., ECCV 2022), whose ablation on real blurred photographs found each of these to
matter for models trained on synthetic blur (sensor noise most of all).

Images here are float arrays in linear light unless a name says otherwise; every random choice comes from the
generator passed in.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from nafft.data.io import quantize

SOURCE_GAMMA = 2.2  # sharp sources (photographs, dead leaves) are linearised with this gamma
# RSBlur's fitted typical Poisson-Gaussian level, in fractions of full scale as variances: var = SHOT * x + READ.
SHOT_VARIANCE = 8.9e-5
READ_VARIANCE = 2.9e-5
NOISE_GAIN_RANGE = (0.25, 4.0)  # the sampled level is the typical one times a log-uniform gain in this range
RESPONSE_GAMMA_RANGE = (2.0, 2.6)
RESPONSE_KINDS = ("gamma", "srgb", "filmic")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1), linear light -> encoded, on [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of `srgb_encode`."""
    encoded = np.clip(encoded, 0.0, 1.0)
    return np.where(encoded <= 0.04045, encoded / 12.92, np.power((encoded + 0.055) / 1.055, 2.4))


@dataclass(frozen=True)
class ResponseCurve:
    """A camera response (tone curve) from linear light to encoded values, monotone with 0 -> 0 and 1 -> 1.

    Attributes:
        kind: "gamma" (x ** (1 / gamma)), "srgb" (the sRGB curve; gamma unused) or "filmic" (the gamma curve
            blended with a smoothstep S-curve by `contrast`, for the added mid-tone contrast of camera JPEGs).
        gamma: the exponent of "gamma" and "filmic".
        contrast: the S-curve's weight in [0, 1) for "filmic".
    """

    kind: str = "gamma"
    gamma: float = SOURCE_GAMMA
    contrast: float = 0.0

    def __call__(self, linear: np.ndarray) -> np.ndarray:
        linear = np.clip(linear, 0.0, 1.0)
        if self.kind == "srgb":
            return srgb_encode(linear)
        encoded = np.power(linear, 1 / self.gamma)
        if self.kind == "filmic":
            encoded = (1 - self.contrast) * encoded + self.contrast * encoded * encoded * (3 - 2 * encoded)
        return encoded


def random_response(rng: np.random.Generator) -> ResponseCurve:
    """One of `RESPONSE_KINDS` with equal probability, gamma uniform in `RESPONSE_GAMMA_RANGE`, filmic contrast
    uniform in [0.1, 0.5] (the same numbers are drawn whatever the kind)."""
    kind = RESPONSE_KINDS[int(rng.integers(0, len(RESPONSE_KINDS)))]
    gamma = rng.uniform(*RESPONSE_GAMMA_RANGE)
    contrast = rng.uniform(0.1, 0.5)
    return ResponseCurve(kind=kind, gamma=gamma if kind != "srgb" else SOURCE_GAMMA,
                         contrast=contrast if kind == "filmic" else 0.0)


def exposure_factor(rng: np.random.Generator, saturation: float) -> float:
    """The exposure multiplier for highlight saturation: uniform in [1 - saturation, 1 + saturation]."""
    factor = rng.uniform(1.0 - saturation, 1.0 + saturation)
    return float(factor) if saturation > 0 else 1.0


def noise_level(rng: np.random.Generator, scale: float = 1.0,
                gain_range: tuple[float, float] = NOISE_GAIN_RANGE) -> tuple[float, float]:
    """(shot, read) variances: RSBlur's typical level times a log-uniform gain in `gain_range`, times
    `scale` squared (`scale` multiplies the noise's standard deviation)."""
    gain = math.exp(rng.uniform(*np.log(gain_range)))
    return SHOT_VARIANCE * gain * scale**2, READ_VARIANCE * gain * scale**2


def poisson_gaussian(linear: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Sensor noise in linear light: Poisson photon counts (variance `shot * x`) plus Gaussian read noise
    (variance `read`); negative light is clipped at 0 before counting. float64, not clipped above."""
    linear = np.clip(np.asarray(linear, dtype=np.float64), 0.0, None)
    noisy = rng.poisson(linear / shot) * shot if shot > 0 else linear.copy()
    if read > 0:
        noisy += math.sqrt(read) * rng.standard_normal(linear.shape)
    return noisy


def gaussian_noise(linear: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Heteroscedastic Gaussian noise with variance `shot * x + read` (the evaluation generator's model)."""
    linear = np.asarray(linear, dtype=np.float64)
    sigma = np.sqrt(shot * np.clip(linear, 0.0, None) + read)
    return linear + sigma * rng.standard_normal(linear.shape)


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, 3) through a JPEG encoder at `quality` (4:2:0 chroma, as cameras and phones save) and back."""
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with PILImage.open(buffer) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def to_8bit(encoded: np.ndarray) -> np.ndarray:
    """Encoded values in [0, 1] -> uint8 (the project's one rounding convention, `nafft.data.io.quantize`)."""
    return quantize(np.asarray(encoded, dtype=np.float64))
