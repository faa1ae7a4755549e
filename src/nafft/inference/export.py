"""Export a model for deployment: folded safetensors, or ONNX checked against PyTorch in onnxruntime.

Both formats start from `reparameterize` (DO-Conv folded into plain convolutions). ONNX graphs have dynamic batch,
height and width. They are traced with the TorchScript-based exporter (`dynamo=False`): the dynamo exporter cannot
export NAFNet with a dynamic batch here (torch.export specialises the batch through the ECA reshape guards), and it
maps rfft2/irfft2 to DFT nodes whose inverse onnxruntime fails to run. The FFT blocks are therefore traced with
their transforms written as cos/sin matrix products built from the input's shape (`FFTResBlock._branch_matmul`,
taken while tracing, like TLC's traceable pooling).

TLC travels into the graph: when the model has TLC on (`nafft export` switches it on with the checkpoint's training
crop size unless `--no-tlc`), its local pooling is traced in a form whose window sizes, counts and padding indices
are tensor operations on the input's shape (`nafft.models.pooling`), so the ONNX model gives PyTorch's TLC output
at every size, below and above the window; without TLC the graph has global pooling. The graph is traced in NCHW
(the channels_last path calls oneDNN directly) and checked against the default PyTorch path.

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

from nafft.atomic_files import commit_temp, new_temp
from nafft.errors import UserError
from nafft.inference.opened_model import OpenedModel
from nafft.models import (
    NAFNet,
    disable_tlc,
    load_model,
    reparameterize,
    save_model,
    set_memory_format,
    tlc_window,
    unwrap,
)
from nafft.models.checkpoint import FORMAT_KEY, MODEL_CONFIG_KEY

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
        tlc_train_size: the training size whose TLC windows the graph computes; None for global pooling.
    """

    path: Path
    format: str
    checks: list[tuple[tuple[int, ...], float]]
    size_bytes: int
    tlc_train_size: tuple[int, int] | None = None

    @property
    def max_error(self) -> float:
        return max(err for _, err in self.checks)


def prepare_for_export(model: OpenedModel, tlc: bool = False) -> NAFNet:
    """A folded, eval-mode float32 CPU copy of the opened model's network in NCHW (the original is left alone); its
    TLC setting is kept when `tlc`, else global pooling."""
    network = copy.deepcopy(unwrap(model.network)).float().cpu().eval()
    if not isinstance(network, NAFNet):
        raise ExportError(f"{model.name}: only NAFNet networks can be exported, got {type(network).__name__}")
    reparameterize(network)
    if not tlc:
        disable_tlc(network)
    return set_memory_format(network, False)


def check_sizes(model: NAFNet) -> list[tuple[int, int, int, int]]:
    """Odd-sized inputs for the parity check, none a multiple of the padding: two shapes and two batch sizes; with
    TLC also one input larger than the full-resolution window and one larger in width only."""
    m = model.padder_size
    sizes = [(1, 3, 2 * m + 3, 3 * m - 5 if 3 * m > 5 else 7), (2, 3, m + 7, 2 * m + 1)]
    window = tlc_window(model)
    if window is not None:
        k1, k2 = window
        sizes += [(1, 3, k1 + m + 3, k2 + 2 * m + 5), (2, 3, m + 7, k2 + 3)]
    return sizes


def _reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(x).contiguous().numpy()


def export_onnx(
    model: OpenedModel, path: str | Path, tolerance: float = TOLERANCE, seed: int = 0, tlc: bool = True
) -> ExportResult:
    """Write an ONNX file with dynamic (batch, height, width) and check it in onnxruntime.

    Input and output have the axes (batch, channels, height, width): the named dimensions "batch", "height" and
    "width", and the model's fixed number of image channels (3).

    With `tlc` and a model whose TLC is on (`enable_tlc`), the graph computes TLC's local pooling at every input
    size; otherwise global pooling. The check runs odd-sized inputs (different heights, widths and batches; with
    TLC also larger than the window) through onnxruntime and through the model's default PyTorch path (torch.fft
    for FFT blocks, channels_last on the CPU) and fails when any output differs by more than `tolerance`.

    Raises:
        ExportError: onnx/onnxruntime missing, or the exported graph does not match PyTorch.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nafft[onnx]'") from None
    path = Path(path)
    model = prepare_for_export(model, tlc=tlc)  # from here on the network to trace
    tlc_train_size = getattr(model, "tlc_train_size", None)
    sizes = check_sizes(model)
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(size, generator=gen) for size in sizes]
    tmp = new_temp(path)
    try:
        with warnings.catch_warnings():
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
        _fix_channel_axis(tmp, model.config.img_channels)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
        set_memory_format(model, None)  # the reference is PyTorch's default path
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
    return ExportResult(path, "onnx", checks, path.stat().st_size, tlc_train_size)


def _fix_channel_axis(path: Path, channels: int) -> None:
    """Give the output's channel axis the fixed size the input's has: the tracer names it after the crop that ends
    the network (`Sliceoutput_dim_1`), so the file would read as (batch, Sliceoutput_dim_1, height, width)."""
    import onnx

    graph = onnx.load(str(path))
    for value in graph.graph.output:
        value.type.tensor_type.shape.dim[1].dim_value = channels  # replaces the dim_param (a oneof)
    onnx.save(graph, str(path))


def export_safetensors(
    model: OpenedModel, path: str | Path, metadata: dict[str, str] | None = None, tolerance: float = TOLERANCE
) -> ExportResult:
    """Write the folded network as a nafft safetensors file, reload it and check it against the original.

    `metadata` (e.g. the training config, so TLC keeps its training size) is stored in the file; by default the
    opened file's own (its training config, iteration, card), less the keys `save_model` writes anew.
    """
    path = Path(path)
    if metadata is None:
        metadata = {k: v for k, v in model.metadata.items() if k not in (FORMAT_KEY, MODEL_CONFIG_KEY)}
    original = copy.deepcopy(unwrap(model.network)).float().cpu().eval()
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
