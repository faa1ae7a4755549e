"""Synthetic blurred/sharp training pairs, made here from nothing (no downloads).

- `scenes`: sharp sources: procedural dead leaves, random views of photographs (a folder, or the sample
  photographs inside installed packages).
- `motion`: camera paths, GoPro-style frame averaging, motion kernels, defocus, and the independent
  camera-shake kernels of the evaluation generator.
- `camera`: exposure and clipping, Poisson-Gaussian sensor noise, camera response curves, 8 bits, JPEG.
- `pairs`: `SynthSettings`, `make_pair` and the resumable folder writer (`synthesize_pairs`).
"""

from nafft.data.synth.motion import (
    Trajectory,
    gopro_blur,
    kernel_blur,
    motion_kernel,
    random_trajectory,
    shake_kernel,
)
from nafft.data.synth.pairs import (
    BLURS,
    CAMERA_OPTIONS,
    MANIFEST,
    SOURCES,
    SynthError,
    SynthPair,
    SynthResult,
    SynthSettings,
    iter_synthesize,
    make_pair,
    pair_name,
    source_paths,
    synthesize_pairs,
)
from nafft.data.synth.scenes import dead_leaves, package_photos, random_photo_crop, skimage_photo_paths

__all__ = [
    "BLURS",
    "CAMERA_OPTIONS",
    "MANIFEST",
    "SOURCES",
    "SynthError",
    "SynthPair",
    "SynthResult",
    "SynthSettings",
    "Trajectory",
    "dead_leaves",
    "gopro_blur",
    "iter_synthesize",
    "kernel_blur",
    "make_pair",
    "motion_kernel",
    "package_photos",
    "pair_name",
    "random_photo_crop",
    "random_trajectory",
    "shake_kernel",
    "skimage_photo_paths",
    "source_paths",
    "synthesize_pairs",
]
