"""Structural changes for inference: fold DO-Conv (`reparameterize`), TLC local pooling (`enable_tlc`) and the
memory format (`set_memory_format`)."""

from __future__ import annotations

import torch
from torch import nn

from nafft.models.conv import DOConv2d
from nafft.models.nafnet import NAFNet
from nafft.models.pooling import AvgPool


def unwrap(model: nn.Module) -> nn.Module:
    """The NAFNet inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _fold_into(parent: nn.Module) -> int:
    count = 0
    for name, child in parent.named_children():
        if isinstance(child, DOConv2d):
            setattr(parent, name, child.fold())
            count += 1
        else:
            count += _fold_into(child)
    return count


def reparameterize(model: nn.Module) -> nn.Module:
    """Fold every DO-Conv into a plain `nn.Conv2d` with the composed kernel, in place; returns the model.

    The folded model computes the same function (up to float rounding) at exactly the cost of the plain-conv
    model, and its state dict has the plain model's keys. `model.config.conv` becomes "conv".
    """
    _fold_into(model)
    inner = unwrap(model)
    if isinstance(inner, NAFNet) and inner.config.conv != "conv":
        inner.config = inner.config.replace(conv="conv")
    return model


def _as_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def enable_tlc(model: nn.Module, train_size: int | tuple[int, int] = 256, ratio: float = 1.5) -> nn.Module:
    """Switch every attention's global average pool to TLC local pooling, in place; returns the model.

    The window at a level is the feature size seen in training there times `ratio` (1.5: a 256 training patch gives
    a 384 px window at full resolution, 192 at the next level...), with the official integer arithmetic, so the
    result equals NAFNetLocal(train_size=(1, 3, H, W), fast_imp=False) for the same weights.
    """
    inner = unwrap(model)
    if not isinstance(inner, NAFNet):
        raise TypeError(f"enable_tlc needs a NAFNet, got {type(inner).__name__}")
    th, tw = _as_pair(train_size)
    if th < 1 or tw < 1:
        raise ValueError(f"train_size must be positive, got {train_size}")
    base_h, base_w = int(th * ratio), int(tw * ratio)
    p = inner.padder_size
    # NAFNet pads its input to a multiple of padder_size, so the training features were this size at level 0.
    feat_h, feat_w = -(-th // p) * p, -(-tw // p) * p
    for level, block in inner.level_blocks():
        kernel = ((feat_h >> level) * base_h // th, (feat_w >> level) * base_w // tw)
        for module in block.modules():
            if isinstance(module, AvgPool):
                module.kernel_size = kernel
    inner.tlc_train_size = (th, tw)
    return model


def disable_tlc(model: nn.Module) -> nn.Module:
    """Back to global average pooling everywhere; returns the model."""
    inner = unwrap(model)
    for module in inner.modules():
        if isinstance(module, AvgPool):
            module.kernel_size = None
    if hasattr(inner, "tlc_train_size"):
        del inner.tlc_train_size
    return model


def tlc_window(model: nn.Module) -> tuple[int, int] | None:
    """The largest TLC pooling window (height, width), the full-resolution one; None under global pooling."""
    sizes = [m.kernel_size for m in model.modules() if isinstance(m, AvgPool) and m.kernel_size is not None]
    return (max(k[0] for k in sizes), max(k[1] for k in sizes)) if sizes else None


def preferred_channels_last(device: str | torch.device) -> bool:
    """Whether channels_last is the faster memory format on `device`.

    On the CPU it is: a NAFNet-w32 forward takes about half the NCHW time (oneDNN convolutions, and the NAF block's
    channels_last path; benchmarks/bench_models.py). On CUDA it has not been measured here, so NCHW stays.
    """
    return torch.device(device).type == "cpu"


def set_memory_format(model: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """Run the model in channels_last (True) or NCHW (False) memory, whatever its input; returns the model.

    None restores the default: channels_last on the CPU, where it is faster (`preferred_channels_last`), the
    input's format elsewhere. The weights are converted in place to the format chosen for the device they are on.
    """
    inner = unwrap(model)
    if isinstance(inner, NAFNet):
        inner.channels_last = channels_last
    if channels_last is None:
        param = next(model.parameters(), None)
        channels_last = preferred_channels_last(param.device if param is not None else "cpu")
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
