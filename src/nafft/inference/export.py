"""Export a model for deployment: folded safetensors, or ONNX checked against PyTorch in onnxruntime.

Both formats start from `reparameterize` (DO-Conv folded into plain convolutions). ONNX graphs have dynamic batch,
height and width. They are traced with the TorchScript-based exporter (`dynamo=False`): the dynamo exporter cannot
export NAFNet with a dynamic batch here (torch.export specialises the batch through the ECA reshape guards), and it
maps rfft2/irfft2 to DFT nodes whose inverse onnxruntime fails to run. The FFT blocks are therefore traced with
their transforms written as cos/sin matrix products built from the input's shape (`nafft.models.fft.dft_as_matmul`).

Exported graphs use global average pooling: TLC's local windows depend on the input size through Python branches
that a trace would freeze, so an ONNX model computes the plain-pooling output (`--no-tlc` in eval/deblur).

A file is written under a temporary name, checked, and only then renamed to its target, so a failed check never
leaves a file behind.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nafft.errors import UserError
from nafft.fileio import commit_temp, new_temp
from nafft.models import disable_tlc, load_model, reparameterize, save_model, unwrap
from nafft.models.fft import dft_as_matmul

log = logging.getLogger(__name__)

ONNX_OPSET = 17
TOLERANCE = 1e-4


class ExportError(UserError):
    """An export that cannot be done or whose result does not match PyTorch."""


@dataclass
class ExportResult:
    """What was written and how well it matches PyTorch.

    Attributes:
        path: the file written.
        format: "onnx" or "safetensors".
        checks: (input shape, max |exported - PyTorch|) per checked input.
        size_bytes: the file size.
    """

    path: Path
    format: str
    checks: list[tuple[tuple[int, ...], float]]
    size_bytes: int

    @property
    def max_error(self) -> float:
        return max(err for _, err in self.checks)


def prepare_for_export(model: nn.Module) -> nn.Module:
    """A folded, eval-mode, global-pooling float32 CPU copy of the model (the original is left alone)."""
    model = copy.deepcopy(unwrap(model)).float().cpu().eval()
    reparameterize(model)
    disable_tlc(model)
    return model


def check_sizes(model: nn.Module) -> list[tuple[int, int, int, int]]:
    """Odd-sized inputs for the parity check, none a multiple of the padding: two shapes and two batch sizes."""
    m = int(getattr(model, "padder_size", 1))
    return [(1, 3, 2 * m + 3, 3 * m - 5 if 3 * m > 5 else 7), (2, 3, m + 7, 2 * m + 1)]


def _reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(x).numpy()


def export_onnx(
    model: nn.Module, path: str | Path, tolerance: float = TOLERANCE, seed: int = 0
) -> ExportResult:
    """Write an ONNX file with dynamic (batch, height, width) and check it in onnxruntime.

    The check runs two odd-sized inputs (different height, width and batch) through onnxruntime and through the
    model's normal PyTorch path (torch.fft for FFT blocks) and fails when any output differs by more than
    `tolerance`.

    Raises:
        ExportError: onnx/onnxruntime missing, or the exported graph does not match PyTorch.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nafft[onnx]'") from None
    path = Path(path)
    model = prepare_for_export(model)
    sizes = check_sizes(model)
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(size, generator=gen) for size in sizes]
    tmp = new_temp(path)
    try:
        with warnings.catch_warnings(), dft_as_matmul():
            # The tracer warns about every Python branch on a shape; those in the models are size-independent.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (inputs[0],),
                str(tmp),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("input", "output")},
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
        checks = []
        for x in inputs:
            got = session.run(None, {"input": x.numpy()})[0]
            want = _reference(model, x)
            if got.shape != want.shape:
                raise ExportError(f"{path}: onnxruntime output shape {got.shape} != PyTorch {want.shape}")
            checks.append((tuple(x.shape), float(np.abs(got - want).max())))
        worst = max(err for _, err in checks)
        if not worst <= tolerance:
            detail = ", ".join(f"{s}: {e:.2e}" for s, e in checks)
            raise ExportError(
                f"{path}: onnxruntime output differs from PyTorch by up to {worst:.2e} > {tolerance:g} ({detail})"
            )
        commit_temp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, "onnx", checks, path.stat().st_size)


def export_safetensors(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None, tolerance: float = TOLERANCE
) -> ExportResult:
    """Write the folded model as a nafft safetensors file, reload it and check it against the original.

    `metadata` (e.g. the training config, so TLC keeps its training size) is stored in the file.
    """
    path = Path(path)
    original = copy.deepcopy(unwrap(model)).float().cpu().eval()
    disable_tlc(original)
    folded = prepare_for_export(model)
    tmp = new_temp(path)  # load_model recognises safetensors by their header
    try:
        save_model(folded, tmp, metadata=metadata)
        reloaded = load_model(tmp)
        gen = torch.Generator().manual_seed(0)
        checks = []
        for size in check_sizes(folded):
            x = torch.rand(size, generator=gen)
            checks.append((size, float(np.abs(_reference(reloaded, x) - _reference(original, x)).max())))
        worst = max(err for _, err in checks)
        if not worst <= tolerance:
            raise ExportError(
                f"{path}: folded model differs from the original by up to {worst:.2e} > {tolerance:g}"
            )
        commit_temp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, "safetensors", checks, path.stat().st_size)
