"""`nafft ablate`: train every config for the same budget and seeds, evaluate each on the same held-out set, and
tabulate (the notes' empty PSNR table, filled).

Runs live in OUT/runs/<config>/seed<k>/ as normal run directories; a finished run (trained to the budget and
evaluated) is skipped on a re-run and an interrupted one is resumed, so the command can be stopped and run again.
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nafft.data.io import atomic_write_bytes
from nafft.experiments.plots import plot_curves
from nafft.experiments.runs import (
    RunResult,
    SynthPlan,
    find_config,
    make_datasets,
    recipe_config,
    train_and_evaluate,
)

log = logging.getLogger(__name__)

# The notes' five, at the CPU scale: baseline, +ECA, +ECA+FFT skips (FFT loss), +DO-Conv with 12 blocks,
# +DO-Conv with 28 blocks and L1 only (at the `small` size the last encoder stage has 1 vs 2 blocks).
DEFAULT_CONFIGS = ("nafnet-small", "nafft-v1-small", "nafft-v2-small", "nafft-v3-small", "nafft-v4-small")


@dataclass(frozen=True)
class AblationOptions:
    """What `nafft ablate` does.

    Attributes:
        configs: recipe files or names in configs/; the first is the reference for the deltas.
        iterations: training iterations of every run (the same budget for all).
        seeds: runs per config, with training seeds `seed`, `seed + 1`, ...
        seed: the first training seed.
        out: output folder.
        train: training pair folders (default: synthesised under OUT/data).
        val: validation pair folder for the curves (default: synthesised).
        test: held-out pair folders (default: synthesised).
        plan: the synthetic data when folders are not given.
        overrides: `a.b=value` applied to every config (e.g. `data.batch_size=16`).
    """

    configs: tuple[str, ...] = DEFAULT_CONFIGS
    iterations: int = 1000
    seeds: int = 2
    seed: int = 42
    out: Path = Path("runs/ablation")
    train: tuple[Path, ...] = ()
    val: Path | None = None
    test: tuple[Path, ...] = ()
    plan: SynthPlan = field(default_factory=SynthPlan)
    overrides: tuple[str, ...] = ()


@dataclass
class ConfigResult:
    name: str
    path: Path
    description: str
    runs: list[RunResult]

    def values(self, key: str) -> list[float]:
        return [getattr(r, key) for r in self.runs]


def describe(config) -> str:
    """A short description of what a config changes: attention, conv, skips, blocks and losses."""
    from nafft.models import resolve_config

    m = resolve_config(config.model)
    parts = [m.attention.upper(), "DO-Conv" if m.conv == "doconv" else "conv",
             "FFT skips" if m.skip == "fft" else "plain skips"]
    if m.block_fft:
        parts.append("FFT in blocks")
    parts.append("enc " + ",".join(map(str, m.enc_blocks)))
    losses = " + ".join(f"{w:g} {k}" if w != 1 else k for k, w in config.loss.weights().items())
    return ", ".join(parts) + f"; loss {losses}"


def run_ablation(opts: AblationOptions, callback_factory=None, progress=None) -> dict[str, Any]:
    """Train and evaluate every config x seed, then write OUT/ablation.md, OUT/ablation.json and the curves PNG."""
    out = Path(opts.out)
    train, val, test = tuple(opts.train), opts.val, tuple(opts.test)
    if not (train and test):
        data = make_datasets(out / "data", opts.plan, progress=progress)
        train, val, test = train or data.train, val or data.val, test or data.test
    paths = [find_config(c) for c in opts.configs]
    results: list[ConfigResult] = []
    for path in paths:
        runs = []
        config = None
        for k in range(opts.seeds):
            seed = opts.seed + k
            config = recipe_config(path, train, val, opts.iterations, seed, opts.overrides, checkpoints=4)
            run_dir = out / "runs" / path.stem / f"seed{seed}"
            callback = callback_factory(f"{path.stem} seed {seed}") if callback_factory else None
            runs.append(train_and_evaluate(path.stem, config, run_dir, test, panels=2, callback=callback))
        results.append(ConfigResult(path.stem, path, describe(config), runs))
    table = summarize(results)
    table.update(
        iterations=opts.iterations,
        seeds=[opts.seed + k for k in range(opts.seeds)],
        train=[str(p) for p in train],
        test=[str(p) for p in test],
        machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
    )
    atomic_write_bytes(out / "ablation.json", (json.dumps(table, indent=2) + "\n").encode())
    plot = plot_curves({r.name: [run.curve for run in r.runs] for r in results}, out / "ablation_curves.png",
                       title=f"validation PSNR (mean over {opts.seeds} seeds, band = min-max)")
    atomic_write_bytes(out / "ablation.md", render_markdown(table, plot.name).encode())
    return table


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: list[ConfigResult]) -> dict[str, Any]:
    """Per config: params, MACs, PSNR/SSIM per seed and their mean and standard deviation, delta to the first."""
    rows = []
    for r in results:
        psnr_mean, psnr_std = _mean_std(r.values("psnr"))
        ssim_mean, ssim_std = _mean_std(r.values("ssim"))
        rows.append({
            "name": r.name,
            "config": str(r.path),
            "description": r.description,
            "params": r.runs[0].params,
            "macs": r.runs[0].macs,
            "psnr": r.values("psnr"),
            "ssim": r.values("ssim"),
            "psnr_mean": psnr_mean,
            "psnr_std": psnr_std,
            "ssim_mean": ssim_mean,
            "ssim_std": ssim_std,
            "train_seconds": [run.train_seconds for run in r.runs],
            "run_dirs": [str(run.run_dir) for run in r.runs],
        })
    for row in rows:
        row["delta_psnr"] = row["psnr_mean"] - rows[0]["psnr_mean"]
        row["delta_ssim"] = row["ssim_mean"] - rows[0]["ssim_mean"]
    first = results[0].runs[0].summary
    return {"input_psnr": first["input_psnr"], "input_ssim": first["input_ssim"],
            "test_images": first["images"], "rows": rows}


def render_markdown(table: dict[str, Any], plot_name: str) -> str:
    seeds = len(table["seeds"])
    lines = [
        "# Ablation",
        "",
        f"{table['iterations']} iterations per run, seeds {', '.join(map(str, table['seeds']))}; held-out test set of "
        f"{table['test_images']} images ({', '.join(table['test'])}); PSNR and SSIM (MATLAB/BasicSR 2-D) on 8-bit "
        f"RGB, TLC on, mean +- standard deviation over {seeds} seed{'s' if seeds > 1 else ''}. "
        f"Blurry input: {table['input_psnr']:.2f} dB / {table['input_ssim']:.4f}. Machine: {table['machine']}.",
        "",
        "| variant | what it is | params | GMACs @256 | PSNR (dB) | SSIM | delta PSNR | delta SSIM |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, row in enumerate(table["rows"]):
        delta = "(reference)" if i == 0 else f"{row['delta_psnr']:+.2f}"
        delta_ssim = "" if i == 0 else f"{row['delta_ssim']:+.4f}"
        lines.append(
            f"| `{row['name']}` | {row['description']} | {row['params']:,} | {row['macs'] / 1e9:.2f} | "
            f"{row['psnr_mean']:.2f} +- {row['psnr_std']:.2f} | {row['ssim_mean']:.4f} +- {row['ssim_std']:.4f} | "
            f"{delta} | {delta_ssim} |"
        )
    lines += ["", f"![validation PSNR curves]({plot_name})", ""]
    return "\n".join(lines)
