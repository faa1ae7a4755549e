"""Train the strength guard of a model (`nafft.inference.guard`, `nafft.engine.guard_training`).

    python scripts/train_guard.py --model nafft-photo --pairs data/default/guard/trust ... \\
        --val sharp-low=data/default/heldout-val/sharp-low ... --out runs/guard/nafft-photo.safetensors

The model restores every pair once (cached per pair folder in --cache-dir, so settings can be tried without
restoring again; a cache is keyed by the folder's path and the SHA-256 of the model's tensors), the
guard trains on the training pairs and is scored on each --val set after every epoch (mean / worst gain in dB at
strength 1 and under the guard, and its mean strength); --out gets the last epoch's guard with a card naming the
model file (and its SHA-256), the pairs, the settings and the validation scores. `--history` writes the per-epoch
scores as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from nafft.engine.guard_training import (
    GuardTrainConfig,
    Restored,
    measure_examples,
    restore_pairs,
    train_guard,
)
from nafft.errors import UserError
from nafft.inference import open_model
from nafft.inference.guard import FEATURE_NAMES, check_ceiling, save_guard


def weights_digest(path: Path) -> str:
    """SHA-256 of a weight file's tensors (names, dtypes, shapes, bytes): the same weights give the same digest when
    only the file's metadata (a model card) changes."""
    from safetensors.torch import load_file

    if path.suffix != ".safetensors":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for name, tensor in sorted(load_file(str(path)).items()):
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _pack(examples: list[Restored]) -> dict:
    return {"name": [e.name for e in examples], "image": [e.image for e in examples],
            "restored": [e.restored for e in examples], "target": [e.target for e in examples]}


def _unpack(packed: dict) -> list[Restored]:
    return [Restored(*row) for row in zip(packed["name"], packed["image"], packed["restored"], packed["target"])]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="nafft-photo", help="bundled model name or weight file")
    p.add_argument("--pairs", action="append", required=True, type=Path, help="training pair folder (repeat)")
    p.add_argument("--val", action="append", default=[], help="NAME=FOLDER validation pair folder (repeat)")
    p.add_argument("--out", type=Path, required=True, help="guard file to write (.safetensors)")
    p.add_argument("--cache-dir", type=Path, help="folder of restoration caches (.pt), one per pair folder")
    p.add_argument("--history", type=Path, help="per-epoch scores (.json)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--every", type=int, default=20, help="validate every N epochs")
    for field, default in asdict(GuardTrainConfig()).items():
        p.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = GuardTrainConfig(**{k: getattr(args, k) for k in asdict(GuardTrainConfig())})
    try:
        check_ceiling(config.ceiling)
    except UserError as exc:
        raise SystemExit(f"--ceiling: {exc}") from None
    val_specs = dict(v.split("=", 1) for v in args.val)

    model = open_model(args.model, device="cpu")
    digest = weights_digest(model.path) if model.path is not None else None

    def cached(folder, what: str, make):
        base = f"{Path(folder).resolve()}|{digest}" + (f"|{what}" if what else "")
        key = hashlib.sha256(base.encode()).hexdigest()[:16]
        cache = args.cache_dir / f"{Path(folder).name}-{key}.pt" if args.cache_dir is not None else None
        if cache is not None and cache.is_file():
            return torch.load(cache, weights_only=True)
        value = make()
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(value, cache)
        return value

    def restored(folder) -> list[Restored]:
        return _unpack(cached(folder, "", lambda: _pack([Restored(f"{Path(folder).name}/{e.name}", e.image,
                                                                  e.restored, e.target)
                                                         for e in restore_pairs(model, folder)])))

    def measured(folder, crops: int) -> tuple[torch.Tensor, torch.Tensor]:
        what = f"features {','.join(FEATURE_NAMES)} crops {crops}x{config.crop} seed {config.seed}"
        return tuple(cached(folder, what, lambda: list(measure_examples(restored(folder), crops, config.crop,
                                                                        config.seed))))

    parts = [measured(folder, config.crops) for folder in args.pairs]
    features, best = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    val = {name: (restored(folder), measured(folder, 0)[0]) for name, folder in val_specs.items()}
    print(f"{len(best)} training measurements from {len(args.pairs)} folders; validation: "
          + ", ".join(f"{k} {len(v[0])}" for k, v in val.items()), flush=True)

    def show(entry: dict) -> None:
        cells = "  ".join(f"{k} {v['full']:+.2f}/{v['full_worst']:+.2f} -> {v['guarded']:+.2f}/"
                          f"{v['guarded_worst']:+.2f} (S {v['strength']:.2f})"
                          for k, v in entry.items() if isinstance(v, dict))
        print(f"epoch {entry['epoch']:3d} loss {entry['loss']:.3f} ({entry['seconds']:.0f} s)  {cells}", flush=True)

    guard, history = train_guard(features, best, config, val, on_epoch=show, every=args.every)
    card = {"model": model.name, "model_tensors_sha256": digest, "pairs": [str(f) for f in args.pairs],
            "training_measurements": len(best), "config": asdict(config), "validation": history[-1] if history else {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_guard(guard, args.out, card)
    if args.history is not None:
        args.history.write_text(json.dumps(history, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
