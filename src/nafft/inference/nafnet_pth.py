"""Export in the official NAFNet `.pth` layout, which spandrel (the model loader of chaiNNer and ComfyUI) runs.

The official layout is what BasicSR saves: `{"params": state_dict}` with NAFNet's own tensor names, which nafft keeps
for every plain-NAFNet tensor. spandrel detects NAFNet from those names and rebuilds the official architecture from
the tensor shapes (width, blocks per level, middle blocks, image channels); its NAFNet has no TLC, so it computes
global pooling, as `nafft deblur --no-tlc` does. Only what that architecture holds can be written: DO-Conv folds into
plain convolutions first, but ECA, the attention gate, FFT skips, FFT branches in the blocks, expansions other than
2 and levels without blocks have no counterpart there and are refused, each named.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from nafft.atomic_files import commit_temp, new_temp
from nafft.inference.export import TOLERANCE, ExportError, ExportResult, check_sizes, prepare_for_export
from nafft.inference.opened_model import OpenedModel
from nafft.models import ModelConfig, disable_tlc, load_model, unwrap

PARAMS_KEY = "params"


def official_blockers(config: ModelConfig) -> list[str]:
    """The features of an architecture that official NAFNet (and spandrel's copy of it) lacks; [] when its weights
    run there. DO-Conv is not one: it folds into plain convolutions."""
    blockers = []
    if config.attention != "sca":
        blockers.append(f"{config.attention.upper()} channel attention (official NAFNet has SCA)")
    if config.attention_gate != "none":
        blockers.append(f"a {config.attention_gate} gate on the channel attention")
    if config.skip != "identity":
        blockers.append(f"{config.skip.upper()} residual blocks on the encoder-decoder skips")
    if config.block_fft:
        blockers.append("an FFT branch in every block")
    for name in ("dw_expand", "ffn_expand"):
        if getattr(config, name) != 2:
            blockers.append(f"{name} {getattr(config, name)} (official NAFNet: 2)")
    if config.middle_blocks == 0 or 0 in config.enc_blocks or 0 in config.dec_blocks:
        blockers.append("a level without blocks (spandrel counts levels from the blocks)")
    return blockers


def export_official_pth(model: OpenedModel, path: str | Path, tolerance: float = TOLERANCE) -> ExportResult:
    """Write the folded network as `{"params": state_dict}`, reload it through nafft's reader of official files
    (weights only, architecture from the shapes) and check it against the network without TLC.

    Raises:
        ExportError: an architecture official NAFNet cannot run (naming each feature), or a reloaded model that differs
            from the original by more than `tolerance`; nothing is left at `path` then.
    """
    path = Path(path)
    architecture = model.architecture or model.config
    if architecture is None:
        raise ExportError(f"{model.name}: only NAFNet networks can be exported, got {type(model.network).__name__}")
    blockers = official_blockers(architecture)
    if blockers:
        raise ExportError(
            f"{path}: {model.name} cannot be written as an official NAFNet .pth: official NAFNet, and spandrel "
            f"(chaiNNer, ComfyUI), cannot run {'; '.join(blockers)}. Export it to ONNX instead (--format onnx)"
        )
    original = copy.deepcopy(unwrap(model.network)).float().cpu().eval()
    disable_tlc(original)
    folded = prepare_for_export(model)
    state = {name: tensor.detach().contiguous().clone() for name, tensor in folded.state_dict().items()}
    tmp = new_temp(path)
    try:
        torch.save({PARAMS_KEY: state}, tmp)
        reloaded = load_model(tmp)  # infers the architecture from the shapes, as spandrel does
        gen = torch.Generator().manual_seed(0)
        checks = []
        with torch.inference_mode():
            for size in check_sizes(folded):
                x = torch.rand(size, generator=gen)
                checks.append((size, float(np.abs((reloaded(x) - original(x)).numpy()).max())))
        worst = max(err for _, err in checks)
        if not worst <= tolerance:
            raise ExportError(f"{path}: the .pth model differs from the original by up to {worst:.2e} > {tolerance:g}")
        commit_temp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, "pth", checks, path.stat().st_size)
