"""The ablation runner (`nafft ablate`; `nafft demo` is one configuration of it): every config x seed trained for the
same budget on one data set, each run evaluated on one held-out set, and one summary of them all.

Runs live in OUT/runs/<config>/seed<k>/ (the demo: OUT/<config>/) as normal run directories; a finished run (trained
to the budget and evaluated) is skipped on a re-run and an interrupted one is resumed, so the job can be stopped and
run again, and configs or seeds can be added to a folder later. What must not change within a folder is refused
before anything is made: other data (OUT/plan.json records it), runs with other settings, or another budget (a
larger one than a run's needs `extend=True`, `--extend`, and the table says which runs were extended).

The summary (`summarize`) has one row per config; each row lists its runs in the order of `seeds`, so the runs of
two configs pair up by seed. One table (`table_rows`) is rendered to Markdown (`render_markdown`: the report) and to
the console (`format_table`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nafft.config import diff_keys, to_dict
from nafft.errors import UserError
from nafft.experiments.plots import plot_curves
from nafft.experiments.runs import (
    RunResult,
    SynthPlan,
    calibrate_step_seconds,
    comparison_panels,
    find_config,
    make_datasets,
    recipe_config,
    train_and_evaluate,
)
from nafft.fileio import atomic_write_text

log = logging.getLogger(__name__)

# The notes' five, at the CPU scale: baseline, +ECA, +ECA+FFT skips (FFT loss), +DO-Conv with 12 blocks,
# +DO-Conv with 28 blocks and L1 only (at the `small` size the last encoder stage has 1 vs 2 blocks).
DEFAULT_CONFIGS = ("nafnet-small", "nafft-v1-small", "nafft-v2-small", "nafft-v3-small", "nafft-v4-small")
# The share of a time budget planned for the training steps themselves; the rest covers data loading, validation
# and checkpoints.
STEP_SHARE = 0.8
# Keys `recipe_config` derives from the iteration budget: they change with it and are not settings of their own.
BUDGET_KEYS = ("train.iterations", "train.val_every", "train.checkpoint_every", "train.log_every",
               "schedule.warmup_iters")
EXTENDED_FILE = "extended_from.json"


@dataclass(frozen=True)
class Layout:
    """Where a job writes, under OUT: run folders (`{name}`, `{seed}`), the summary, report and curves."""

    run_dir: str = "runs/{name}/seed{seed}"
    summary: str = "ablation.json"
    report: str = "ablation.md"
    curves: str = "ablation_curves.png"
    title: str = "Ablation"


@dataclass(frozen=True)
class AblationOptions:
    """What the runner does.

    Attributes:
        configs: recipe names (`nafft configs`) or files; the first is the reference for the deltas.
        iterations: training iterations of every run (the same budget for all)...
        minutes: ...or, with `iterations` None, a training time for all configs together (one seed each), turned
            into an iteration count by timing a few training steps of each config here (once per folder).
        seeds: runs per config, with training seeds `seed`, `seed + 1`, ...
        seed: the first training seed.
        out: output folder.
        train: training pair folders (default: synthesised under OUT/data).
        val: validation pair folder for the curves (default: synthesised).
        test: held-out pair folders (default: synthesised).
        plan: the synthetic data when folders are not given.
        use_photos: add scikit-image's photographs to the synthetic data (when installed).
        overrides: `a.b=value` applied to every config (e.g. `data.batch_size=16`).
        extend: continue runs of OUT trained with a smaller budget to `iterations` (refused otherwise).
        checkpoints: checkpoints written over each run.
        eval_panels: comparison panels in each run's evaluation report.
        comparison_panels: test images shown side by side for every config in the report.
        layout: file names.
    """

    configs: tuple[str, ...] = DEFAULT_CONFIGS
    iterations: int | None = 1000
    minutes: float | None = None
    seeds: int = 2
    seed: int = 42
    out: Path = Path("runs/ablation")
    train: tuple[Path, ...] = ()
    val: Path | None = None
    test: tuple[Path, ...] = ()
    plan: SynthPlan = field(default_factory=SynthPlan)
    use_photos: bool = True
    overrides: tuple[str, ...] = ()
    extend: bool = False
    checkpoints: int = 4
    eval_panels: int = 2
    comparison_panels: int = 4
    layout: Layout = field(default_factory=Layout)


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
    """Train and evaluate every config x seed; write the summary, report, curves and comparison panels to OUT.

    Args:
        opts: the options.
        callback_factory: `label -> trainer Callback` (e.g. a progress bar per run).
        progress: `(stage, done, total)` for the data synthesis.

    Returns:
        the summary (`summarize`), also written to OUT/<layout.summary>.
    """
    out, layout = Path(opts.out), opts.layout
    paths = {Path(spec).stem: find_config(spec) for spec in opts.configs}
    for path in paths.values():  # every option is checked before any data is made
        recipe_config(path, (Path("."),), None, 10**6, opts.seed, opts.overrides)
    plan, requested = _read_plan(opts, out)
    iterations, steps = _budget(opts, paths, plan)
    train, val, test = tuple(opts.train), opts.val, tuple(opts.test)
    if not (train and test):
        data = make_datasets(out / "data", opts.plan, use_photos=opts.use_photos, progress=progress)
        train, val, test = train or data.train, val or data.val, test or data.test
    seeds = [opts.seed + k for k in range(opts.seeds)]
    planned = [(name, seed, recipe_config(path, train, val, iterations, seed, opts.overrides, opts.checkpoints),
                out / layout.run_dir.format(name=name, seed=seed)) for name, path in paths.items() for seed in seeds]
    extending = check_existing_runs(planned, iterations, opts.extend, out)
    atomic_write_text(out / "plan.json", json.dumps(
        {"requested": requested, "iterations": iterations, "calibrated_step_seconds": steps}, indent=2) + "\n")
    results: dict[str, list[RunResult]] = {name: [] for name in paths}
    extended: dict[str, int] = {}
    for name, seed, config, run_dir in planned:
        label = f"{name} seed {seed}"
        if label in extending and not (run_dir / EXTENDED_FILE).is_file():
            log.info("%s: extending from %d to %d iterations", label, extending[label], iterations)
            atomic_write_text(run_dir / EXTENDED_FILE, json.dumps({"from": extending[label]}))
        callback = callback_factory(name if len(seeds) == 1 else label) if callback_factory else None
        results[name].append(train_and_evaluate(name, config, run_dir, test, panels=opts.eval_panels,
                                                callback=callback))
        if (run_dir / EXTENDED_FILE).is_file():
            extended[label] = int(json.loads((run_dir / EXTENDED_FILE).read_text())["from"])
    summary = summarize(results, {name: str(path) for name, path in paths.items()},
                        {name: describe(planned[i * len(seeds)][2]) for i, name in enumerate(paths)})
    summary.update(iterations=iterations, seeds=seeds, train=[str(p) for p in train], test=[str(p) for p in test],
                   extended_from=extended,
                   machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    atomic_write_text(out / layout.summary, json.dumps(summary, indent=2) + "\n")
    first = [runs[0] for runs in results.values()]
    val_records = first[0].val_records
    plot = plot_curves({name: [run.curve for run in runs] for name, runs in results.items()}, out / layout.curves,
                       title=f"validation PSNR, {iterations} iterations per run"
                             + (f" (mean over {len(seeds)} seeds, band = min-max)" if len(seeds) > 1 else ""),
                       baseline=val_records[0].get("input_psnr") if val_records else None)
    panels = comparison_panels(first, test, out / "panels", opts.comparison_panels)
    atomic_write_text(out / layout.report, render_markdown(summary, layout.title, plot, panels, out))
    return summary


def _read_plan(opts: AblationOptions, out: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """OUT/plan.json, refused when its runs were made on other data, and what this job asks for."""
    data = (asdict(opts.plan) | {"use_photos": opts.use_photos} if not (opts.train and opts.test) else
            {"train": [str(p) for p in opts.train], "val": str(opts.val), "test": [str(p) for p in opts.test]})
    budget = {"iterations": opts.iterations} if opts.iterations else {"minutes": opts.minutes,
                                                                       "configs": list(opts.configs)}
    requested = {"data": data, "budget": budget}
    path = out / "plan.json"
    if not path.is_file():
        return None, requested
    plan = json.loads(path.read_text())
    stored = plan.setdefault("requested", {})
    if "models" in stored:  # a demo folder of before the demo was a job of this runner
        stored["data"] = {**stored.get("data", {}), "use_photos": stored.get("use_photos")}
        stored["budget"] = ({"iterations": stored["iterations"]} if stored.get("iterations") else
                            {"minutes": stored.get("minutes"), "configs": stored["models"]})
    if stored.get("data") != data:
        changed = ", ".join(diff_keys(stored.get("data"), data))
        raise UserError(f"{out} holds runs made on other data ({path}: {changed}); pass another --out")
    return plan, requested


def _budget(opts: AblationOptions, paths: dict[str, Path], plan: dict[str, Any] | None) -> tuple[int, dict]:
    """The iteration count: `iterations`, or the one a time budget gave this folder before, or a new calibration."""
    if opts.iterations:
        return opts.iterations, {}
    budget = {"minutes": opts.minutes, "configs": list(opts.configs)}
    if plan is not None and plan["requested"].get("budget") == budget:
        return plan["iterations"], plan["calibrated_step_seconds"]
    # only the model, batch and crop size matter for the time of a step
    steps = {name: calibrate_step_seconds(recipe_config(path, (Path("."),), None, 10**6, opts.seed, opts.overrides))
             for name, path in paths.items()}
    iterations = max(20, int(opts.minutes * 60 * STEP_SHARE / sum(steps.values())) // 10 * 10)
    log.info("step seconds %s -> %d iterations per run for %.1f minutes", steps, iterations, opts.minutes)
    return iterations, steps


def check_existing_runs(planned: list[tuple[str, int, Any, Path]], iterations: int, extend: bool,
                        where: Path) -> dict[str, int]:
    """Compare the runs already in their folders with the planned ones, before anything is trained.

    Args:
        planned: (config name, seed, TrainConfig, run folder) of every run of this job.
        iterations: the budget asked for.
        extend: allow continuing runs with a smaller budget.
        where: the job's folder, for the messages.

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
    if other:
        first = next(iter(other))
        raise UserError(
            f"{where}: {len(other)} run(s) there were made with other settings ({first}: {', '.join(other[first])}); "
            f"use another --out"
        )
    for runs in (longer, shorter if not extend else {}):
        if runs:
            budgets = ", ".join(map(str, sorted(set(runs.values()))))
            problem = (f"they cannot be cut to --iterations {iterations}: use another --out" if runs is longer else
                       f"--iterations {iterations} would resume them past their finished learning-rate schedule. "
                       f"Pass --extend to continue them to {iterations} iterations (the table then says so), or use "
                       f"another --out")
            raise UserError(f"{where}: runs there were trained for {budgets} iterations ({', '.join(runs)}); {problem}")
    return shorter


# ---------------------------------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: dict[str, list[RunResult]], configs: dict[str, str], descriptions: dict[str, str]) -> dict:
    """The one summary of a job: per config (first = reference) its runs in seed order (`RunResult.record`),
    PSNR/SSIM mean and standard deviation over them, deltas to the reference, and the means of the other columns."""
    rows = []
    for name, runs in results.items():
        records = [run.record() for run in runs]
        psnr_mean, psnr_std = _mean_std([r["psnr"] for r in records])
        ssim_mean, ssim_std = _mean_std([r["ssim"] for r in records])
        times = [r["train_seconds"] for r in records]
        rows.append({
            "name": name, "config": configs[name], "description": descriptions[name],
            "params": runs[0].params, "macs": runs[0].macs, "runs": records,
            "psnr_mean": psnr_mean, "psnr_std": psnr_std, "ssim_mean": ssim_mean, "ssim_std": ssim_std,
            "improved_images": statistics.fmean(r["improved_images"] for r in records),
            "ms_per_image": statistics.fmean(r["ms_per_image"] for r in records),
            "train_seconds": statistics.fmean(times) if None not in times else None,
        })  # fmt: skip
    for row in rows:
        row["delta_psnr"] = row["psnr_mean"] - rows[0]["psnr_mean"]
        row["delta_ssim"] = row["ssim_mean"] - rows[0]["ssim_mean"]
    first = next(iter(results.values()))[0].summary
    return {"input_psnr": first["input_psnr"], "input_ssim": first["input_ssim"], "test_images": first["images"],
            "macs_at": "256x256", "rows": rows}


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The summary as table cells, the blurry input first: the one table behind the report and the console."""
    multi = len(summary["seeds"]) > 1
    images = summary["test_images"]
    rows = [{"model": "blurry input", "PSNR (dB)": f"{summary['input_psnr']:.2f}",
             "SSIM": f"{summary['input_ssim']:.4f}"}]
    for i, row in enumerate(summary["rows"]):
        minutes = row["train_seconds"] / 60 if row["train_seconds"] else None
        rows.append({
            "model": row["name"], "what it is": row["description"], "params": f"{row['params']:,}",
            "GMACs @256": f"{row['macs'] / 1e9:.2f}",
            "PSNR (dB)": f"{row['psnr_mean']:.2f}" + (f" +- {row['psnr_std']:.2f}" if multi else ""),
            "SSIM": f"{row['ssim_mean']:.4f}" + (f" +- {row['ssim_std']:.4f}" if multi else ""),
            "gain (dB)": f"{row['psnr_mean'] - summary['input_psnr']:+.2f}",
            "improved": f"{row['improved_images']:g}/{images}", "ms / image": f"{row['ms_per_image']:.0f}",
            "training time": f"{minutes:.1f} min" if minutes else "",
            "delta PSNR": "(reference)" if i == 0 else f"{row['delta_psnr']:+.2f}",
            "delta SSIM": "" if i == 0 else f"{row['delta_ssim']:+.4f}",
        })  # fmt: skip
    return rows


REPORT_COLUMNS = ("model", "what it is", "params", "GMACs @256", "PSNR (dB)", "SSIM", "gain (dB)", "improved",
                  "ms / image", "training time", "delta PSNR", "delta SSIM")
CONSOLE_COLUMNS = {"model": "model", "PSNR (dB)": "PSNR dB", "SSIM": "SSIM", "gain (dB)": "gain dB",
                   "improved": "improved", "params": "params", "ms / image": "ms/img"}  # cell -> short header


def render_markdown(summary: dict[str, Any], title: str, plot: Path, panels: list[Path], out: Path) -> str:
    """The report: what was run, the table, extended runs, the curves, the comparison panels, per-run reports."""
    seeds = summary["seeds"]
    multi = len(seeds) > 1
    lines = [
        f"# {title}",
        "",
        f"{summary['iterations']} iterations per run, seed{'s' if multi else ''} {', '.join(map(str, seeds))}; "
        f"held-out test set of {summary['test_images']} images ({', '.join(summary['test'])}); PSNR and SSIM "
        f"(MATLAB/BasicSR 2-D) on 8-bit RGB, TLC on"
        f"{f', mean +- standard deviation over {len(seeds)} seeds' if multi else ''}. Machine: {summary['machine']}.",
        "",
        "| " + " | ".join(REPORT_COLUMNS) + " |",
        "|---|---|" + "---:|" * (len(REPORT_COLUMNS) - 2),
    ]
    for cells in table_rows(summary):
        name = cells["model"] if cells["model"] == "blurry input" else f"`{cells['model']}`"
        lines.append("| " + " | ".join([name, *(cells.get(c, "") for c in REPORT_COLUMNS[1:])]) + " |")
    extended = summary.get("extended_from") or {}
    if extended:
        froms = ", ".join(str(v) for v in sorted(set(extended.values())))
        lines += ["", f"**Extended runs:** {len(extended)} run(s) were trained for {froms} iterations and then "
                      f"continued to {summary['iterations']} with a new schedule ({', '.join(extended)}); they are "
                      f"not the same as runs trained for {summary['iterations']} iterations from the start."]
    lines += ["", f"![validation PSNR curves]({plot.relative_to(out).as_posix()})", ""]
    if panels:
        names = " | ".join(row["name"] for row in summary["rows"])
        lines += ["## Comparison panels", "", f"blur | {names} | sharp", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in panels] + [""]
    reports = []
    for row in summary["rows"]:
        for run in row["runs"]:
            link = Path(os.path.relpath(Path(run["run_dir"]) / "eval" / "report.md", out)).as_posix()
            reports.append(f"[{row['name']}{' seed ' + str(run['seed']) if multi else ''}]({link})")
    lines += ["Per-run reports: " + ", ".join(reports), ""]
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    """The console table: the report's table without its wide columns."""
    header = list(CONSOLE_COLUMNS.values())
    rows = [[cells.get(c, "") for c in CONSOLE_COLUMNS] for cells in table_rows(summary)]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r).rstrip() for r in (header, *rows))
