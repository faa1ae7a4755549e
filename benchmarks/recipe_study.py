"""Which recipe gives the most dB for a fixed CPU budget? Trains candidate recipes of the default model for equal
CPU time on the same training pairs and scores each on held-out synthetic photographs.

Every candidate starts from the nafft-photo recipe (src/nafft/configs/) and changes one thing (model size, crop,
loss, learning rate, data mix). Its step time is measured first (same process, same threads), and its iteration
count is `--minutes` of training at that speed, so a slower model trains fewer steps. Step times are CPU seconds of
this process (run it with one thread), so other jobs on the machine do not change the budgets. Each is scored (EMA
weights, TLC as its crops imply) on every `--test` folder separately; the table gives PSNR gain over the blurry
input per folder.

    python benchmarks/recipe_study.py --train T_PHOTOS T_LEAVES --val VAL --test TEST_A TEST_B \\
        --minutes 15 --threads 1 --out runs/recipe_study

Runs live in OUT/CANDIDATE/ (normal run folders; a finished one is reused, an interrupted one resumed);
OUT/study.md and OUT/study.json hold the table. Candidates: --candidates NAME... (default: all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from nafft.engine.config import build_config, read_config_file
from nafft.experiments.runs import evaluate_run, find_config, time_training_steps
from nafft.profiling import count_macs, count_parameters

STAGE1 = "weights/nafft-photo-stage1.safetensors"
DEEP = {"enc_blocks": [1, 1, 2, 6], "middle_blocks": 2, "dec_blocks": [1, 1, 1, 1]}
CANDIDATES: dict[str, dict] = {
    "base": {},  # the nafft-photo recipe: width 16, deep low-resolution half, 128 crops, batch 8, PSNR loss
    "nafnet-small": {"model": {"enc_blocks": [1, 1, 1, 2], "middle_blocks": 1}},
    "width-24": {"model": {"width": 24}},
    "nafft-eca-fft": {"model": {"attention": "eca", "skip": "fft"}, "loss": {"fft": 0.05}},
    "crop-64": {"data": {"patch_size": 64, "batch_size": 32}},
    "crop-192": {"data": {"patch_size": 192, "batch_size": 4}},
    "loss-psnr-fft": {"loss": {"fft": 0.05}},
    "lr-5e-4": {"optim": {"lr": 5.0e-4}},
    "photos-only": {"data": {"train": "photos"}},
    # the notes' question at the default model's scale (issue 19): the FFT branch in every block (the one
    # resolved gain of the ablation), and the notes' final model (ECA, FFT skips, DO-Conv, L1 loss)
    "block-fft": {"model": {"block_fft": True}},
    "notes-final": {"model": {"attention": "eca", "skip": "fft", "conv": "doconv"}, "loss": {"psnr": 0.0, "l1": 1.0}},
    # warm starts from the stage-1 default model at stage 2's learning rate: go on as it is, or add the FFT branch
    # (its new tensors start fresh, the others from stage 1)
    "warm": {"model": {"init": STAGE1}, "optim": {"lr": 4.0e-4}},
    "warm-block-fft": {"model": {"init": STAGE1, "block_fft": True}, "optim": {"lr": 4.0e-4}},
    # the notes' final model warm-started the same way: its DO-Conv layers start as stage 1's convolutions
    # (`load_matching`), its ECA and FFT-skip tensors fresh
    "warm-notes-final": {"model": {"init": STAGE1, "attention": "eca", "skip": "fft", "conv": "doconv"},
                         "loss": {"psnr": 0.0, "l1": 1.0}, "optim": {"lr": 4.0e-4}},
}


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def candidate_config(name: str, train: list[str], val: str, seconds_per_step: float | None, minutes: float,
                     seed: int):
    changes = CANDIDATES[name]
    mapping = _merge(read_config_file(find_config("nafft-photo")), changes)
    data = mapping["data"]
    data["train"] = [train[0]] if data.get("train") == "photos" else list(train)
    data["val"] = val
    iterations = 100 if seconds_per_step is None else max(100, int(minutes * 60 / seconds_per_step))
    mapping["train"].update(iterations=iterations, seed=seed, val_every=max(1, iterations // 5),
                            checkpoint_every=max(1, iterations // 10), log_every=max(1, iterations // 50),
                            tensorboard=False, keep_checkpoints=1)
    mapping["schedule"]["warmup_iters"] = min(mapping["schedule"]["warmup_iters"], iterations // 20)
    return build_config(mapping, source=f"candidate {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, help="training pair folders, photographs first")
    parser.add_argument("--val", required=True, help="validation pairs (curves during training)")
    parser.add_argument("--test", nargs="+", required=True, help="held-out pair folders, scored separately")
    parser.add_argument("--minutes", type=float, default=15.0, help="CPU minutes of training per candidate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--candidates", nargs="+", choices=tuple(CANDIDATES), default=tuple(CANDIDATES))
    parser.add_argument("--out", type=Path, default=Path("runs/recipe_study"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from nafft.engine.trainer import train

    # Step times of all candidates measured together (interleaved rounds, median), so that a busy moment of the
    # machine does not favour one of them; the budget is `--minutes` at the measured speed of each.
    timing = args.out / "step_seconds.json"
    if timing.is_file():
        steps = json.loads(timing.read_text())
    else:
        probes = {name: candidate_config(name, args.train, args.val, None, args.minutes, args.seed)
                  for name in args.candidates}
        rounds = {name: [] for name in args.candidates}
        for _ in range(3):
            for name, probe in probes.items():
                rounds[name].append(time_training_steps(probe, steps=3)[1])  # CPU seconds
        steps = {name: statistics.median(times) for name, times in rounds.items()}
        args.out.mkdir(parents=True, exist_ok=True)
        timing.write_text(json.dumps(steps, indent=2))
    rows = []
    for name in args.candidates:
        run_dir = args.out / name
        step = steps[name]
        config = candidate_config(name, args.train, args.val, step, args.minutes, args.seed)
        print(f"{name}: {step:.3f} s/step -> {config.train.iterations} iterations", flush=True)
        start = time.perf_counter()
        train(config, run_dir, resume=True)
        checkpoint = run_dir / "checkpoints" / "last_ema.safetensors"
        scores = {}
        for test in args.test:
            summary = evaluate_run(checkpoint, [Path(test)], run_dir / f"eval_{Path(test).name}", panels=0,
                                   save_images=False)
            scores[Path(test).name] = {"psnr": summary["psnr"], "input_psnr": summary["input_psnr"],
                                       "improved": summary.get("improved_images"), "images": summary["images"]}
        model_config = config.model_config()
        from nafft.models import build_model

        model = build_model(model_config)
        rows.append({"name": name, "changes": CANDIDATES[name], "step_seconds": step,
                     "iterations": config.train.iterations, "params": count_parameters(model),
                     "gmacs_256": count_macs(model.eval(), (256, 256)) / 1e9, "scores": scores,
                     "seconds_this_call": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    tests = [Path(t).name for t in args.test]
    lines = [f"Recipe study: {args.minutes:g} CPU minutes of training per candidate ({args.threads} thread(s), "
             f"torch {torch.__version__}); gain = PSNR of the EMA weights minus the blurry input's, dB.", "",
             "| candidate | change | params | GMACs @256 | s/step | iterations | "
             + " | ".join(f"gain {t}" for t in tests) + " |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(tests)]
    for row in rows:
        gains = [row["scores"][t]["psnr"] - row["scores"][t]["input_psnr"] for t in tests]
        change = json.dumps(row["changes"]).replace("|", "/") if row["changes"] else "(nafft-photo.yaml)"
        lines.append(f"| {row['name']} | `{change}` | {row['params']:,} | {row['gmacs_256']:.2f} | "
                     f"{row['step_seconds']:.3f} | {row['iterations']:,} | "
                     + " | ".join(f"{g:+.2f}" for g in gains) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.md").write_text("\n".join(lines) + "\n")
    (args.out / "study.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
