"""The main job: synthesise data, train NAFNet and NAFFT-Net for an equal budget, evaluate both on held-out images.

Everything runs with zero downloads on a 2-core CPU in minutes: dead-leaves images (plus scikit-image's
photographs when installed) blurred the way GoPro was made, the `*-small` CPU recipes of configs/, and `nafft eval`'s
paper-convention metrics. The output is a normal run directory per model, runs/demo/summary.json, and a report
with a table, a PSNR-vs-iteration plot and comparison panels.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nafft.data.io import atomic_write_bytes, read_image, write_image
from nafft.errors import UserError
from nafft.experiments.plots import plot_curves
from nafft.experiments.runs import (
    RunResult,
    SynthPlan,
    calibrate_step_seconds,
    find_config,
    make_datasets,
    recipe_config,
    train_and_evaluate,
    validation_records,
)

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("nafnet-small", "nafft-v4-small")
# The share of the time budget planned for the training steps themselves; the rest covers data loading,
# validation and checkpoints.
STEP_SHARE = 0.8


@dataclass(frozen=True)
class DemoOptions:
    """What `nafft demo` does.

    Attributes:
        out: output folder (run directories, data, summary, report).
        models: recipe names in configs/ (or paths); each trains for the same number of iterations.
        minutes: training time budget for all models together, turned into an iteration count by timing a few
            training steps of each model on this machine first.
        iterations: a fixed iteration count instead of `minutes`.
        plan: the synthetic data.
        use_photos: add scikit-image's photographs (when installed) to the dead-leaves images.
        seed: training seed.
    """

    out: Path = Path("runs/demo")
    models: tuple[str, ...] = DEFAULT_MODELS
    minutes: float = 6.0
    iterations: int | None = None
    plan: SynthPlan = field(default_factory=SynthPlan)
    use_photos: bool = True
    seed: int = 42


def _resolve_plan(opts: DemoOptions, configs: dict[str, Any]) -> dict[str, Any]:
    """The iteration count, fixed once per output folder: a re-run with the same options reuses it (and skips
    finished runs); other options in the same folder are refused rather than mixed with the old runs."""
    requested = {
        "models": list(opts.models),
        "minutes": None if opts.iterations else opts.minutes,
        "iterations": opts.iterations,
        "data": asdict(opts.plan),
        "use_photos": opts.use_photos,
        "seed": opts.seed,
    }
    path = opts.out / "plan.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("requested") != requested:
            raise UserError(
                f"{opts.out} holds a demo made with other options ({path}); remove the folder or pass another --out"
            )
        return stored
    if opts.iterations:
        iterations, steps = opts.iterations, {}
    else:
        steps = {name: calibrate_step_seconds(cfg) for name, cfg in configs.items()}
        budget = opts.minutes * 60 * STEP_SHARE
        iterations = max(20, int(budget / sum(steps.values())) // 10 * 10)
        log.info("step seconds %s -> %d iterations per model for %.1f minutes", steps, iterations, opts.minutes)
    plan = {"requested": requested, "iterations": iterations, "calibrated_step_seconds": steps}
    opts.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(plan, indent=2) + "\n").encode())
    return plan


def run_demo(opts: DemoOptions, callback_factory=None, progress=None) -> dict[str, Any]:
    """Run the demo end to end; returns the summary (also written to OUT/summary.json).

    Args:
        opts: the options.
        callback_factory: `name -> trainer Callback` (e.g. a progress bar per model).
        progress: `(stage, done, total)` for the data synthesis.
    """
    out = Path(opts.out)
    data = make_datasets(out / "data", opts.plan, use_photos=opts.use_photos, progress=progress)
    # for timing the steps only the model, batch and crop size matter
    configs = {name: recipe_config(find_config(name), data.train, data.val, 10**6, opts.seed)
               for name in opts.models}
    plan = _resolve_plan(opts, configs)
    iterations = plan["iterations"]
    results: dict[str, RunResult] = {}
    for spec in opts.models:
        name = Path(spec).stem  # a recipe name, or a config file's name
        config = recipe_config(find_config(spec), data.train, data.val, iterations, opts.seed)
        callback = callback_factory(name) if callback_factory else None
        results[name] = train_and_evaluate(name, config, out / name, data.test, callback=callback)
    summary = _summary(results, iterations, opts)
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    _report(out, summary, results, data.test)
    return summary


def _rel(path: Path) -> str:
    """`path` relative to the working directory (the repository root for `make demo`) when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _summary(results: dict[str, RunResult], iterations: int, opts: DemoOptions) -> dict[str, Any]:
    first = next(iter(results.values()))
    return {
        "input_psnr": first.summary["input_psnr"],
        "input_ssim": first.summary["input_ssim"],
        "models": {
            name: {
                "psnr": r.psnr,
                "ssim": r.ssim,
                "ssim3d": r.summary["ssim3d"],
                "improved_images": r.summary["improved_images"],
                "params": r.params,
                "macs": r.macs,
                "ms_per_image": r.summary["seconds_per_image"] * 1000,
                "checkpoint": _rel(r.checkpoint),
                "train_seconds": r.train_seconds,
                "iterations": r.iterations,
            }
            for name, r in results.items()
        },
        "test_images": first.summary["images"],
        "iterations": iterations,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "macs_at": "256x256",
    }


def _panel(paths: list[Path], labels: list[str]) -> np.ndarray:
    from nafft.engine.evaluate import labelled_grid

    return labelled_grid([(read_image(p).rgb * 255).round().astype(np.uint8) for p in paths], labels)


def _report(out: Path, summary: dict[str, Any], results: dict[str, RunResult], test: tuple[Path, ...]) -> None:
    names = list(results)
    val_records = validation_records(results[names[0]].run_dir)
    plot = plot_curves({n: [results[n].curve] for n in names}, out / "psnr_curve.png",
                       title=f"validation PSNR, {summary['iterations']} iterations each",
                       baseline=val_records[0].get("input_psnr") if val_records else None)
    first = results[names[0]]
    test_names = sorted(p.relative_to(first.run_dir / "eval" / "images").as_posix()
                        for p in (first.run_dir / "eval" / "images").rglob("*.png"))
    panel_files = []
    for image_name in test_names[:: max(1, len(test_names) // 4)][:4]:
        stem = image_name.rsplit(".", 1)[0]
        folder, _, file_name = image_name.partition("/")
        root = next(t for t in test if t.name == folder)
        blur, sharp = root / "blur" / file_name, root / "sharp" / file_name
        paths = [blur] + [results[n].run_dir / "eval" / "images" / image_name for n in names] + [sharp]
        labels = ["blur"] + names + ["sharp"]
        target = out / "panels" / (stem.replace("/", "__") + ".png")
        write_image(target, _panel(paths, labels))
        panel_files.append(target)
    lines = [
        "# nafft demo",
        "",
        f"Synthetic motion blur (zero downloads), {summary['test_images']} held-out test images; every model trained "
        f"for {summary['iterations']} iterations with its `configs/` recipe. Metrics on 8-bit RGB (PSNR; SSIM in the "
        "MATLAB/BasicSR 2-D convention), TLC on. Machine: " + summary["machine"] + ".",
        "",
        "| model | params | GMACs @256x256 | PSNR (dB) | SSIM | gain over input (dB) | images improved | ms / image "
        "| training time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| blurry input | | | {summary['input_psnr']:.2f} | {summary['input_ssim']:.4f} | | | | |",
    ]
    for name, m in summary["models"].items():
        train_time = f"{m['train_seconds'] / 60:.1f} min" if m["train_seconds"] else ""
        lines.append(
            f"| `{name}` | {m['params']:,} | {m['macs'] / 1e9:.2f} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
            f"{m['psnr'] - summary['input_psnr']:+.2f} | {m['improved_images']}/{summary['test_images']} | "
            f"{m['ms_per_image']:.0f} | {train_time} |"
        )
    lines += ["", f"![validation PSNR]({plot.relative_to(out).as_posix()})", ""]
    if panel_files:
        lines += ["## Comparison panels", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in panel_files]
        lines.append("")
    lines += ["Per-model reports: " + ", ".join(f"[{n}]({n}/eval/report.md)" for n in names), ""]
    atomic_write_bytes(out / "report.md", "\n".join(lines).encode())


def format_table(summary: dict[str, Any]) -> str:
    """The console table printed at the end of the demo."""
    rows = [("blurry input", f"{summary['input_psnr']:.2f}", f"{summary['input_ssim']:.4f}", "", "", "", "")]
    for name, m in summary["models"].items():
        rows.append((name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['psnr'] - summary['input_psnr']:+.2f}",
                     f"{m['improved_images']}/{summary['test_images']}", f"{m['params']:,}", f"{m['ms_per_image']:.0f}"))
    header = ("model", "PSNR dB", "SSIM", "gain dB", "improved", "params", "ms/img")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), *(fmt.format(*r) for r in rows)])
