"""The training configuration: nested typed dataclasses, one per YAML section.

A config file is the YAML form of `TrainConfig`; every key is checked, and a misspelt one is reported as one line
naming the dotted key with the closest valid name (`unknown key 'optim.learning_rate' (did you mean 'optim.lr'?)`).
A file may start from another with `base: OTHER.yaml` (a path relative to the file); its keys are merged into the
base section by section, so a variant is a few-line diff of its recipe. The recipes ship inside the package
(`nafft/configs/*.yaml`, read with `importlib.resources`) and are found by name from any folder (`find_config`). `--set a.b=value` overrides are applied
after the merge. The resolved config (every default filled in, the model's architecture spelled out) is written to
RUN_DIR/config.yaml and into every checkpoint.

Paths in `data.*` are relative to the working directory, as in the official NAFNet options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from nafft.errors import ConfigError
from nafft.typed_config import apply_overrides, diff_keys, dump_yaml, from_dict, load_yaml, suggest, to_dict

log = logging.getLogger(__name__)

LOCAL_CONFIGS = Path("configs")  # a project's own recipes, relative to the working directory, found before ours


def package_configs() -> Path:
    """The folder of the recipes shipped with nafft (package data, a real folder in every normal install)."""
    return Path(str(resources.files("nafft").joinpath("configs")))


def recipe_names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(p.stem for p in package_configs().glob("*.yaml"))


def find_config(spec: str | Path) -> Path:
    """A recipe file from a path or a name, looked up in this order: the path as given, ./configs/NAME.yaml, the
    recipes shipped with nafft. `configs/NAME.yaml` (the repository layout before the recipes moved into the
    package) still finds NAME.

    Raises:
        ConfigError: nothing found; names the closest shipped recipe.
    """
    spec = Path(spec)
    if spec.is_file():
        return spec
    if spec.parent in (Path("."), LOCAL_CONFIGS):
        name = spec.name if spec.suffix in (".yaml", ".yml") else spec.name + ".yaml"
        for folder in (LOCAL_CONFIGS, package_configs()):
            if (folder / name).is_file():
                return folder / name
    raise ConfigError(
        f"config '{spec}': not a file, nor a recipe in ./configs or shipped with nafft"
        f"{suggest(spec.stem, recipe_names())}; `nafft configs` lists them"
    )


@dataclass
class DataConfig:
    """Where the pairs are and how they are batched.

    Attributes:
        train: one or more training pair folders (flat `ROOT/{blur,sharp}` or GoPro-style `ROOT/SEQ/{blur,sharp}`).
        val: a validation pair folder of full images; None skips validation.
        patch_size: side of the random training crops.
        batch_size: the GLOBAL batch per iteration, summed over all GPUs/processes (the official recipes' 32 and
            64). It must be divisible by the number of processes times `train.accumulate`.
        num_workers: data loader worker processes per process.
        augment: the 8 flips/rotations on training crops.
        val_max_images: validate on the first N images only (0 = all).
    """

    train: str | tuple[str, ...] = ()
    val: str | None = None
    patch_size: int = 256
    batch_size: int = 32
    num_workers: int = 4
    augment: bool = True
    val_max_images: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.train, str):
            self.train = (self.train,)
        self.train = tuple(str(p) for p in self.train)
        if self.patch_size < 8:
            raise ConfigError(f"data.patch_size must be at least 8, got {self.patch_size}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must not be negative, got {self.num_workers}")
        if self.val_max_images < 0:
            raise ConfigError(f"data.val_max_images must not be negative, got {self.val_max_images}")


@dataclass
class LossConfig:
    """Weights of the loss terms (0 = off) and their options; the total is the weighted sum.

    Attributes:
        l1: mean absolute error.
        psnr: NAFNet's PSNR loss, `10 * log10(mse + 1e-8)` per image, averaged (negative; lower is better).
        charbonnier: `mean(sqrt((pred - sharp)^2 + eps^2))`.
        fft: frequency-domain L1 on `rfft2` (computed in float32).
        edge: L1 between Laplacian-of-Gaussian responses of prediction and target.
        fft_mode: "modulus" = mean |F(pred) - F(sharp)| (DeepRFT, FNAFNet); "realimag" = mean of the absolute
            real and imaginary parts of the difference (MIMO-UNet).
        fft_norm: `torch.fft.rfft2` normalisation; the references use "backward" (unnormalised).
        charbonnier_eps: Charbonnier epsilon.
        edge_sigma: standard deviation of the LoG kernel in pixels (kernel side `2 * ceil(3 * sigma) + 1`).
    """

    l1: float = 0.0
    psnr: float = 1.0
    charbonnier: float = 0.0
    fft: float = 0.0
    edge: float = 0.0
    fft_mode: Literal["modulus", "realimag"] = "modulus"
    fft_norm: Literal["backward", "ortho", "forward"] = "backward"
    charbonnier_eps: float = 1e-3
    edge_sigma: float = 1.0

    def __post_init__(self) -> None:
        for name in LOSS_TERMS:
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name}: a weight must not be negative, got {getattr(self, name)}")
        if not any(getattr(self, name) > 0 for name in LOSS_TERMS):
            raise ConfigError(f"loss: every weight is 0; give at least one of {', '.join(LOSS_TERMS)} a weight")
        if self.charbonnier_eps <= 0:
            raise ConfigError(f"loss.charbonnier_eps must be positive, got {self.charbonnier_eps}")
        if self.edge_sigma <= 0:
            raise ConfigError(f"loss.edge_sigma must be positive, got {self.edge_sigma}")

    def weights(self) -> dict[str, float]:
        """The enabled terms and their weights."""
        return {name: getattr(self, name) for name in LOSS_TERMS if getattr(self, name) > 0}


LOSS_TERMS = ("l1", "psnr", "charbonnier", "fft", "edge")


@dataclass
class OptimConfig:
    """AdamW.

    Attributes:
        lr: peak learning rate (after warm-up).
        weight_decay: AdamW's decoupled weight decay.
        betas: Adam's moment decays.
        eps: Adam's epsilon.
        clip_grad_norm: clip the global gradient norm to this value (0 = off; the official recipe uses 0.01).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.9)
    eps: float = 1e-8
    clip_grad_norm: float = 0.01

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must not be negative, got {self.weight_decay}")
        for i, beta in enumerate(self.betas):
            if not 0 <= beta < 1:
                raise ConfigError(f"optim.betas[{i}] must be in [0, 1), got {beta}")
        if self.eps <= 0:
            raise ConfigError(f"optim.eps must be positive, got {self.eps}")
        if self.clip_grad_norm < 0:
            raise ConfigError(f"optim.clip_grad_norm must not be negative (0 = off), got {self.clip_grad_norm}")


@dataclass
class ScheduleConfig:
    """Learning rate per iteration.

    Attributes:
        name: "cosine" (anneal from `optim.lr` to `eta_min`, reached at the last iteration) or "constant".
        eta_min: the final learning rate of "cosine".
        warmup_iters: linear warm-up from `optim.lr / warmup_iters` to `optim.lr` over the first iterations.
    """

    name: Literal["cosine", "constant"] = "cosine"
    eta_min: float = 1e-7
    warmup_iters: int = 0

    def __post_init__(self) -> None:
        if self.eta_min < 0:
            raise ConfigError(f"schedule.eta_min must not be negative, got {self.eta_min}")
        if self.warmup_iters < 0:
            raise ConfigError(f"schedule.warmup_iters must not be negative, got {self.warmup_iters}")


@dataclass
class LoopConfig:
    """The `train` section: length, seeds, cadence, precision and tricks.

    Attributes:
        iterations: optimizer updates in the whole run.
        seed: seeds the model initialisation and the data (crops and flips are a function of seed and sample).
        checkpoint_every: write iter/state checkpoints every N iterations (and always at the end).
        keep_checkpoints: keep only the newest N `iter_*` weight files (0 = keep all).
        keep_states: keep only the newest N training states (each holds weights, EMA and optimizer moments).
        val_every: validate every N iterations (and at the end) when `data.val` is set; 0 = only at the end.
        log_every: write a metrics.jsonl line (and TensorBoard scalars) every N iterations.
        amp: autocast precision for the forward pass: "none", "bf16" or "fp16" (with a gradient scaler).
        ema: decay of an exponential moving average of the weights (0 = off), e.g. 0.999.
        channels_last: channels-last memory format for model and inputs; "auto" picks the faster one for the
            device (channels_last on the CPU, about 0.6x the step time; NCHW on CUDA until measured there).
        compile: `torch.compile` the model (opt-in; compiling takes minutes on CPU).
        accumulate: split every process's share of the batch into N micro-batches (same result, less memory).
        max_nonfinite: stop after this many non-finite losses in a row (each one skips its update).
        max_minutes: stop after this many minutes of training steps in this process (checked every `log_every`
            iterations; the run then validates and checkpoints as at its end), 0 = no limit. The schedule keeps its
            length, so a run stopped early ends above its final learning rate; `--resume` continues it.
        stop_at: end at this iteration as `max_minutes` does (validation and checkpoints as at the end), with the
            schedule still planned for `iterations`; 0 = run to `iterations`. A run resumed with the same value
            has nothing to do; `--resume --set train.stop_at=0` continues it.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N" (single-process runs).
        tensorboard: write TensorBoard scalars and image panels to RUN_DIR/tb when tensorboard is installed.
        val_panels: validation images shown as blur | prediction | sharp panels in TensorBoard.
    """

    iterations: int = 200_000
    seed: int = 42
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 0
    keep_states: int = 2
    val_every: int = 20_000
    log_every: int = 200
    amp: Literal["none", "bf16", "fp16"] = "none"
    ema: float = 0.0
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    accumulate: int = 1
    max_nonfinite: int = 10
    max_minutes: float = 0.0
    stop_at: int = 0
    device: str = "auto"
    tensorboard: bool = True
    val_panels: int = 2

    def __post_init__(self) -> None:
        positive = ("iterations", "checkpoint_every", "log_every", "accumulate", "max_nonfinite", "keep_states")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("seed", "keep_checkpoints", "val_every", "val_panels", "max_minutes", "stop_at"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must not be negative, got {getattr(self, name)}")
        if self.stop_at > self.iterations:
            raise ConfigError(f"train.stop_at ({self.stop_at}) must not be above train.iterations ({self.iterations})")
        if not (self.ema == 0 or 0 < self.ema < 1):
            raise ConfigError(f"train.ema is a decay in (0, 1), or 0 for off; got {self.ema}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got '{self.device}'")


@dataclass
class TrainConfig:
    """A whole training run.

    `model` is a preset name and/or ModelConfig fields (`{preset: nafft-v2-w32, width: 48}`); it is validated by
    `nafft.models` and, once resolved, spelled out field by field so that the run documents its architecture.
    `model.init: PATH` starts a new run from those weights (every tensor whose name and shape match; fresh
    optimizer and schedule); a resumed run ignores it.
    """

    model: dict[str, Any] | str = field(default_factory=lambda: {"preset": "nafnet-w32"})
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        self.model = resolve_model_section(self.model)
        if self.schedule.warmup_iters >= self.train.iterations:
            raise ConfigError(
                f"schedule.warmup_iters ({self.schedule.warmup_iters}) must be below train.iterations "
                f"({self.train.iterations})"
            )

    def model_config(self):
        """The `nafft.models.ModelConfig` of this run."""
        from nafft.models.architecture import resolve_config

        return resolve_config({k: v for k, v in self.model.items() if k != "init"})

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_yaml(self) -> str:
        return dump_yaml(self)

    def to_json(self) -> str:
        return json.dumps(to_dict(self), sort_keys=False)


def resolve_model_section(section: Mapping[str, Any] | str) -> dict[str, Any]:
    """`{preset: NAME, field: value...}` -> the preset name (if any) followed by every ModelConfig field, and
    `init` (weights a new run starts from) when given."""
    from nafft.models.architecture import resolve_config

    if isinstance(section, str):
        section = {"preset": section}
    if not isinstance(section, Mapping):
        raise ConfigError(f"model: expected a preset name or a mapping of architecture fields, got {section!r}")
    fields = dict(section)
    init = fields.pop("init", None)
    if init is not None and not isinstance(init, str | os.PathLike):
        raise ConfigError(f"model.init: expected the path of a weight file, got {init!r}")
    preset = fields.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"model.preset: expected a preset name, got {preset!r}")
    try:
        config = resolve_config(fields)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith("unknown model preset"):
            message = f"model.preset: {message}"
        raise ConfigError(message) from None
    resolved: dict[str, Any] = {"preset": preset} if preset is not None else {}
    resolved.update(to_dict(dataclasses.asdict(config)))
    if init is not None:
        resolved["init"] = str(init)
    return resolved


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping of a config file with its `base:` chain merged in (not yet typed)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to this file")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be the path of another config file, got {base!r}")
    base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
    if not base_path.is_file():
        raise ConfigError(f"{path}: base config '{base}' not found (looked for {base_path})")
    return _merge(read_config_file(base_path, (*_seen, path.resolve())), data)


def build_config(data: Mapping[str, Any] | None = None, overrides: Iterable[str] = (), source: str = "") -> TrainConfig:
    """A validated TrainConfig from a mapping plus `a.b=value` overrides.

    Raises:
        ConfigError: one line naming the dotted key at fault (and `source`, the file, when given).
    """
    mapping = apply_overrides(data or {}, list(overrides))
    try:
        return from_dict(TrainConfig, mapping)
    except ConfigError as exc:
        if source:
            raise ConfigError(f"{source}: {exc}") from None
        raise


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training config file or recipe name (`find_config`; following `base:`), apply `--set` overrides and
    validate.

    A run shortened with `train.iterations=N` keeps the recipe's warm-up only if it fits: a recipe warm-up of N or
    more iterations (the `*-small` recipes warm up for 50) becomes a tenth of the run, as `nafft ablate` and
    `nafft demo` do, and says so in the log; a warm-up set by an override as well is taken as it is (and checked).
    """
    overrides = list(overrides)
    path = find_config(path)
    mapping = read_config_file(path)
    keys = {item.partition("=")[0].strip() for item in overrides}
    if "train.iterations" in keys and "schedule.warmup_iters" not in keys:
        merged = apply_overrides(mapping, overrides)
        iterations = merged.get("train", {}).get("iterations")
        warmup = (merged.get("schedule") or {}).get("warmup_iters", 0)
        if isinstance(iterations, int) and isinstance(warmup, int) and iterations > 0 and warmup >= iterations:
            shorter = iterations // 10
            log.info(
                "%s: its warm-up of %d iterations does not fit train.iterations=%d: warming up for %d (a tenth of "
                "the run); --set schedule.warmup_iters=N chooses another", path, warmup, iterations, shorter
            )
            overrides.append(f"schedule.warmup_iters={shorter}")
    return build_config(mapping, overrides, source=str(path))


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The dotted keys in which a run's saved config (`old`, a mapping as in its config.yaml) and a new one differ,
    leaving out training settings added to nafft after the run was made that are at their default: the run had
    them too (a new setting must default to the old behaviour). Model keys always count."""
    defaults = to_dict(TrainConfig())
    return [key for key in diff_keys(old, new) if not _new_default(old, new, key, defaults)]


_ABSENT = object()


def _lookup(mapping: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(mapping, Mapping) or part not in mapping:
            return _ABSENT
        mapping = mapping[part]
    return mapping


def _new_default(old: Mapping[str, Any], new: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> bool:
    if _lookup(old, key) is not _ABSENT or key.startswith("model."):
        return False
    default = _lookup(defaults, key)
    return default is not _ABSENT and not diff_keys(default, _lookup(new, key))
