"""`nafft ablate`: train every config for the same budget and seeds, evaluate each on the same held-out set, and
tabulate (the notes' empty PSNR table, filled).

Runs live in OUT/runs/<config>/seed<k>/ as normal run directories; a finished run (trained to the budget and
evaluated) is skipped on a re-run and an interrupted one is resumed, so the command can be stopped and run again.
A folder whose runs were made with another budget or other settings is refused before any training: resuming them
would continue past (or cut short) their learning-rate schedule, or mix settings, under a table that says otherwise.
`extend=True` (`--extend`) continues runs with a smaller budget to the new one, and the table says so.
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

from nafft.config import diff_keys, to_dict
from nafft.errors import UserError
from nafft.experiments.plots import plot_curves
from nafft.experiments.runs import (
    RunResult,
    SynthPlan,
    find_config,
    make_datasets,
    recipe_config,
    train_and_evaluate,
)
from nafft.fileio import atomic_write_bytes

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
        extend: continue runs of OUT trained with a smaller budget to `iterations` (refused otherwise).
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
    extend: bool = False


# Keys `recipe_config` derives from the iteration budget: they change with it and are not settings of their own.
BUDGET_KEYS = ("train.iterations", "train.val_every", "train.checkpoint_every", "train.log_every",
               "schedule.warmup_iters")
EXTENDED_FILE = "extended_from.json"


def check_existing_runs(planned: list[tuple[str, int, Any, Path]], iterations: int, extend: bool) -> dict[str, int]:
    """Compare the runs already in their folders with the planned ones, before anything is trained.

    Args:
        planned: (config name, seed, TrainConfig, run folder) of every run of this job.
        iterations: the budget asked for.
        extend: allow continuing runs with a smaller budget.

    Returns:
        {run label: the budget it had} for the runs that will be extended.

    Raises:
        UserError: one line naming the runs and the difference: other settings, a larger budget (cannot be cut
            short), or a smaller one without `extend`.
    """
    import yaml

    other: dict[str, list[str]] = {}
    longer: dict[str, int] = {}
    shorter: dict[str, int] = {}
    for name, seed, config, run_dir in planned:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            continue
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        changed = diff_keys(old, to_dict(config))
        label = f"{name} seed {seed}"
        if [k for k in changed if k not in BUDGET_KEYS]:
            other[label] = [k for k in changed if k not in BUDGET_KEYS]
        elif "train.iterations" in changed:
            before = int(old["train"]["iterations"])
            (longer if before > iterations else shorter)[label] = before
    where = planned[0][3].parents[2] if planned else Path(".")
    if other:
        first = next(iter(other))
        raise UserError(
            f"{where}: {len(other)} run(s) there were made with other settings ({first}: {', '.join(other[first])}); "
            f"use another --out"
        )
    if longer:
        budgets = sorted(set(longer.values()))
        raise UserError(
            f"{where}: runs there were trained for {', '.join(map(str, budgets))} iterations "
            f"({', '.join(longer)}); they cannot be cut to --iterations {iterations}: use another --out"
        )
    if shorter and not extend:
        budgets = sorted(set(shorter.values()))
        raise UserError(
            f"{where}: runs there were trained for {', '.join(map(str, budgets))} iterations "
            f"({', '.join(shorter)}); --iterations {iterations} would resume them past their finished learning-rate "
            f"schedule. Pass --extend to continue them to {iterations} iterations (the table then says so), or use "
            f"another --out"
        )
    return shorter


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
    planned = []
    for path in paths:
        for k in range(opts.seeds):
            seed = opts.seed + k
            config = recipe_config(path, train, val, opts.iterations, seed, opts.overrides, checkpoints=4)
            planned.append((path.stem, seed, config, out / "runs" / path.stem / f"seed{seed}"))
    extending = check_existing_runs(planned, opts.iterations, opts.extend)
    for name, seed, _, run_dir in planned:
        before = extending.get(f"{name} seed {seed}")
        if before is not None:
            log.info("%s seed %d: extending from %d to %d iterations", name, seed, before, opts.iterations)
            if not (run_dir / EXTENDED_FILE).is_file():
                atomic_write_bytes(run_dir / EXTENDED_FILE, json.dumps({"from": before}).encode())
    results: list[ConfigResult] = []
    extended: dict[str, int] = {}
    for path in paths:
        runs = []
        config = None
        for name, seed, config, run_dir in (p for p in planned if p[0] == path.stem):
            callback = callback_factory(f"{name} seed {seed}") if callback_factory else None
            runs.append(train_and_evaluate(name, config, run_dir, test, panels=2, callback=callback))
            marker = run_dir / EXTENDED_FILE
            if marker.is_file():
                extended[f"{name} seed {seed}"] = int(json.loads(marker.read_text())["from"])
        results.append(ConfigResult(path.stem, path, describe(config), runs))
    table = summarize(results)
    table.update(
        iterations=opts.iterations,
        seeds=[opts.seed + k for k in range(opts.seeds)],
        train=[str(p) for p in train],
        test=[str(p) for p in test],
        machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        extended_from=extended,
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
    extended = table.get("extended_from") or {}
    note = ""
    if extended:
        froms = ", ".join(str(v) for v in sorted(set(extended.values())))
        note = (f" **Extended runs:** {len(extended)} run(s) were trained for {froms} iterations and then continued to "
                f"{table['iterations']} with a new schedule ({', '.join(extended)}); they are not the same as runs "
                f"trained for {table['iterations']} iterations from the start.")
    lines = [
        "# Ablation",
        "",
        f"{table['iterations']} iterations per run, seeds {', '.join(map(str, table['seeds']))}; held-out test set of "
        f"{table['test_images']} images ({', '.join(table['test'])}); PSNR and SSIM (MATLAB/BasicSR 2-D) on 8-bit "
        f"RGB, TLC on, mean +- standard deviation over {seeds} seed{'s' if seeds > 1 else ''}. "
        f"Blurry input: {table['input_psnr']:.2f} dB / {table['input_ssim']:.4f}. Machine: {table['machine']}."
        + note,
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
