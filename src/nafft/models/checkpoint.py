"""Saving and loading model weights without executing code from the file.

nafft files are safetensors with the architecture config (JSON) in the metadata, so a file alone rebuilds its model.
Official NAFNet `.pth` files (BasicSR format: weights under `params` and/or `params_ema`, DDP saves prefixed with
`module.`) are read with `torch.load(weights_only=True)`; their architecture is inferred from the tensor shapes.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from nafft import __version__
from nafft.atomic_files import atomic_write
from nafft.errors import CheckpointError, ConfigError
from nafft.models.architecture import ModelConfig, resolve_config
from nafft.models.attention import eca_kernel_size
from nafft.models.convert import unwrap
from nafft.models.nafnet import NAFNet
from nafft.typed_config import to_dict

# Metadata keys of nafft files, each defined here once.
MODEL_CONFIG_KEY = "nafft_model_config"  # the architecture (every weight file)
FORMAT_KEY = "format"
FORMAT = "nafft"
STATE_KEY = "nafft_state"  # a training state (nafft.engine.run_checkpoints): not model weights
TRAIN_CONFIG_KEY = "nafft_train_config"  # the resolved training config (weight files written by training)
ITERATION_KEY = "nafft_iteration"  # the iteration the weights are from
WEIGHTS_KEY = "nafft_weights"  # "raw" or "ema"
PARAM_KEYS = ("params", "params_ema")
_PREFIXES = ("module.", "_orig_mod.")


def save_model(model: nn.Module, path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write the model's weights to a safetensors file with its architecture config in the metadata.

    The write is atomic (`nafft.atomic_files.atomic_write`: a temporary file in the same folder, then a rename), so a crash
    never leaves a half-written file under `path`; the file gets the permissions of the user's umask. Extra
    `metadata` (str -> str) is stored next to the config.
    """
    from safetensors.torch import save_file

    inner = unwrap(model)
    if not isinstance(inner, NAFNet):
        raise TypeError(f"save_model needs a NAFNet, got {type(inner).__name__}")
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update({FORMAT_KEY: FORMAT, "nafft_version": __version__, MODEL_CONFIG_KEY: json.dumps(to_dict(inner.config))})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The str -> str metadata of a safetensors file ({} for other formats)."""
    path = Path(path)
    if not _is_safetensors(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    # safetensors: 8-byte little-endian header length, then a JSON object
    return len(head) == 9 and head[8:9] == b"{"


def read_state_dict(path: str | Path, param_key: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The weights and metadata of a nafft or official NAFNet file, with wrapper prefixes removed.

    Args:
        path: a `.safetensors` file or a PyTorch file (`.pth`, `.pt`).
        param_key: for BasicSR-style files, which entry to read ("params" or "params_ema"); by default
            "params" when present, else "params_ema".
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        meta = read_metadata(path)
        if STATE_KEY in meta:
            raise CheckpointError(
                f"{path}: this is a training state (what `nafft train --resume` reads), not model weights; use the "
                f"run's checkpoints/last.safetensors, best.safetensors or iter_*.safetensors"
            )
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        meta = {}
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
            raise CheckpointError(
                f"{path}: refused to load: the file holds objects other than tensors, which could run code "
                f"({first[:200]})"
            ) from None
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
        state = _select_params(obj, path, param_key)
    return _strip_prefixes(state), meta


def _select_params(obj, path: Path, param_key: str | None) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a mapping of weights, got {type(obj).__name__}")
    if param_key is not None:
        if param_key not in obj:
            raise CheckpointError(f"{path}: no '{param_key}' entry (has: {', '.join(map(str, obj))})")
        obj = obj[param_key]
    else:
        for key in (*PARAM_KEYS, "state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: no weight tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
    return tensors


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """For keys `<prefix>.{i}.{j}.conv1.weight`, the number of blocks per i."""
    counts: dict[int, int] = {}
    regex = re.compile(pattern)
    for key in state:
        m = regex.fullmatch(key)
        if m:
            i = int(m.group(1))
            counts[i] = max(counts.get(i, 0), int(m.group(2)) + 1)
    return [counts.get(i, 0) for i in range(max(counts) + 1)] if counts else []


def infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """The ModelConfig whose state dict has these keys and shapes (for files without nafft metadata).

    Everything with parameters is recovered; the attention's gate has none and is taken as "none" (NAFNet's).
    """
    if "intro.weight" not in state:
        raise CheckpointError("not a NAFNet state dict: no 'intro.weight'")
    width, img_channels = state["intro.weight"].shape[:2]
    levels = len({k.split(".")[1] for k in state if k.startswith("downs.")})
    enc = _count(state, r"encoders\.(\d+)\.(\d+)\.norm1\.weight")
    dec = _count(state, r"decoders\.(\d+)\.(\d+)\.norm1\.weight")
    middle = len({k.split(".")[1] for k in state if k.startswith("middle_blks.")})
    enc = tuple(enc + [0] * (levels - len(enc)))
    dec = tuple(dec + [0] * (levels - len(dec)))
    block = next((k[: -len("norm1.weight")] for k in state if k.endswith("norm1.weight")), None)
    fields: dict = dict(width=int(width), img_channels=int(img_channels), enc_blocks=enc, dec_blocks=dec,
                        middle_blocks=middle)
    if block is not None:
        c = state[block + "norm1.weight"].shape[0]
        fields["dw_expand"] = state[block + "conv1.weight"].shape[0] // c
        fields["ffn_expand"] = state[block + "conv4.weight"].shape[0] // c
        fields["conv"] = "doconv" if block + "conv2.D" in state else "conv"
        fields["block_fft"] = block + "fft.conv1.weight" in state
        if block + "eca.conv.weight" in state:
            fields["attention"] = "eca"
            fields["eca_kernel"] = _infer_eca_kernel(state, fields["dw_expand"])
        else:
            fields["attention"] = "sca"
    fields["skip"] = "fft" if "skips.0.conv1.weight" in state else "identity"
    try:
        return ModelConfig(**fields)
    except ValueError as exc:
        raise CheckpointError(f"cannot infer the architecture: {exc}") from None


def _infer_eca_kernel(state: Mapping[str, torch.Tensor], dw_expand: int) -> int | None:
    sizes = {}
    for key, value in state.items():
        if key.endswith("eca.conv.weight"):
            channels = state[key[: -len("eca.conv.weight")] + "conv3.weight"].shape[1]
            sizes[key] = (value.shape[-1], eca_kernel_size(channels))
    if all(k == adaptive for k, adaptive in sizes.values()):
        return None
    fixed = {k for k, _ in sizes.values()}
    if len(fixed) == 1:
        return fixed.pop()
    raise CheckpointError("ECA kernel sizes differ between blocks and do not follow the adaptive rule")


def load_model(path: str | Path, strict: bool = True, param_key: str | None = None) -> NAFNet:
    """A model rebuilt from a nafft safetensors file or an official NAFNet `.pth`, in eval mode on the CPU.

    Args:
        path: the checkpoint.
        strict: require the file's keys to match the model's exactly.
        param_key: for BasicSR-style `.pth` files, "params" or "params_ema" (default: "params" if present).

    Raises:
        CheckpointError: unreadable file, a pickle that would run code, or weights that do not fit.
    """
    path = Path(path)
    state, meta = read_state_dict(path, param_key)
    if MODEL_CONFIG_KEY in meta:
        try:
            config = resolve_config(json.loads(meta[MODEL_CONFIG_KEY]))
        except (json.JSONDecodeError, ConfigError) as exc:
            raise CheckpointError(f"{path}: bad model config in metadata ({exc})") from None
    else:
        try:
            config = infer_config(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    model = NAFNet(config)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        missing, unexpected = _key_mismatch(model, state)
        detail = "; ".join(
            part
            for part in (
                f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})" if missing else "",
                f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
            )
            if part
        ) or str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model: {detail}") from None
    return model.eval()


def _key_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    return missing + [f"{k} (shape)" for k in shape], unexpected


def load_matching(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy into `model` every tensor of the file at `path` whose name and shape match one of the model's (a warm
    start, or a shared initialisation across architectures); the rest of the model keeps its values.

    Returns:
        (loaded, left): the names loaded, and the model's names the file had no matching tensor for.

    Raises:
        CheckpointError: an unreadable file, or one sharing no tensor with the model.
    """
    state, _ = read_state_dict(path)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    matching.update(_plain_into_doconv(state, own))
    if not matching:
        raise CheckpointError(f"{path}: no tensor of this file fits the model (another architecture?)")
    model.load_state_dict(matching, strict=False)
    return sorted(matching), sorted(k for k in own if k not in matching)


def _plain_into_doconv(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A plain convolution's `X.weight` (out, in, M, N) for the model's DO-Conv `X.W` (out, in, M*N) with its
    `X.D` at zero: with D = 0 the composed kernel is W itself, so the DO-Conv layer starts as the plain one did.
    Only for files without DO-Conv tensors: one that names them (a paired ablation's shared initialisation,
    `nafft.experiments.runs.shared_init_state`) already says how each DO-Conv layer starts."""
    mapped = {}
    if any(name.endswith(".W") for name in state):
        return mapped
    for name, target in own.items():
        prefix = name[: -len(".W")] if name.endswith(".W") else None
        source = state.get(f"{prefix}.weight") if prefix else None
        if source is None or source.dim() != 4 or target.shape != (*source.shape[:2], source.shape[2] * source.shape[3]):
            continue
        mapped[name] = source.reshape(target.shape)
        if f"{prefix}.D" in own:
            mapped[f"{prefix}.D"] = torch.zeros_like(own[f"{prefix}.D"])
    return mapped
