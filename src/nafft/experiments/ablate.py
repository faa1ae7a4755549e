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

from nafft.atomic_files import atomic_write_text
from nafft.errors import UserError
from nafft.experiments.plots import plot_curves, plot_differences
from nafft.experiments.runs import (
    RunResult,
    SynthPlan,
    calibrate_step_seconds,
    comparison_panels,
    find_config,
    make_datasets,
    recipe_config,
    shared_fraction,
    time_training_steps,
    train_and_evaluate,
    training_device,
    write_shared_init,
)
from nafft.experiments.stats import paired_differences, paired_interval
from nafft.typed_config import diff_keys, to_dict

log = logging.getLogger(__name__)

# The notes' five, at the CPU scale: baseline, +ECA, +ECA+FFT skips (FFT loss), +DO-Conv with 12 blocks,
# +DO-Conv with 28 blocks and L1 only (at the `small` size the last encoder stage has 1 vs 2 blocks); then the FFT
# ideas the notes left untried or entangled: an FFT branch in every block (FNAFNet), the FFT skips without the FFT
# loss, the FFT loss without the FFT skips.
NOTES_CONFIGS = ("nafnet-small", "nafft-v1-small", "nafft-v2-small", "nafft-v3-small", "nafft-v4-small")
FFT_CONFIGS = ("nafnet-block-fft-small", "nafft-v2-psnr-small", "nafnet-fft-loss-small")
DEFAULT_CONFIGS = NOTES_CONFIGS + FFT_CONFIGS
# The share of a time budget planned for the training steps themselves; the rest covers data loading, validation
# and checkpoints.
STEP_SHARE = 0.8
# Keys `recipe_config` derives from the iteration budget: they change with it and are not settings of their own.
BUDGET_KEYS = ("train.iterations", "train.val_every", "train.checkpoint_every", "train.log_every",
               "schedule.warmup_iters")
EXTENDED_FILE = "extended_from.json"
STEP_COST_FILE = "step_cost.json"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Layout:
    """Where a job writes, under OUT: run folders (`{name}`, `{seed}`), the summary, report and curves."""

    run_dir: str = "runs/{name}/seed{seed}"
    summary: str = "ablation.json"
    report: str = "ablation.md"
    curves: str = "ablation_curves.png"
    differences: str = "ablation_differences.png"
    title: str = "Ablation"


@dataclass(frozen=True)
class AblationOptions:
    """What the runner does.

    Attributes:
        configs: recipe names (`nafft configs`) or files; the first is the reference for the deltas.
        iterations: training iterations of every run (the same budget for all)...
        minutes: ...or, with `iterations` None, a training time for all runs together (configs x seeds), turned
            into an iteration count by timing a few training steps of each config here (once per folder).
        seeds: runs per config, with training seeds `seed`, `seed + 1`, ...
        seed: the first training seed.
        shared_init: the paired design: every run of a seed starts from OUT/init/<reference>-seed<k>.safetensors,
            the reference's initialisation with that seed (`runs.shared_init_state`), wherever its architecture
            shares tensors with the reference; the batches are the same anyway (a function of seed and sample).
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
        command: the command line that ran the job, shown in the report.
    """

    configs: tuple[str, ...] = DEFAULT_CONFIGS
    iterations: int | None = 1000
    minutes: float | None = None
    seeds: int = 3
    seed: int = 42
    shared_init: bool = True
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
    command: str | None = None


def describe(config) -> str:
    """A short description of what a config changes: attention, conv, skips, blocks and losses."""
    m = config.model_config()
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
    reference = next(iter(paths))
    inits = {seed: out / "init" / f"{reference}-seed{seed}.safetensors" for seed in seeds} if opts.shared_init else {}
    planned = [(name, seed, recipe_config(path, train, val, iterations, seed, opts.overrides, opts.checkpoints,
                                          init=inits.get(seed)),
                out / layout.run_dir.format(name=name, seed=seed)) for name, path in paths.items() for seed in seeds]
    extending = check_existing_runs(planned, iterations, opts.extend, out)
    for name, seed, config, _ in planned:
        if name == reference and seed in inits:
            write_shared_init(config, seed, inits[seed])
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
    first_configs = {name: planned[i * len(seeds)][2] for i, name in enumerate(paths)}
    summary = _summarize_job(results, paths, first_configs, inits.get(seeds[0]), out)
    summary.update(iterations=iterations, seeds=seeds, train=[str(p) for p in train], test=[str(p) for p in test],
                   val=None if val is None else str(val), extended_from=extended, overrides=list(opts.overrides),
                   command=opts.command)
    atomic_write_text(out / layout.summary, json.dumps(summary, indent=2) + "\n")
    _write_report(summary, results, test, out, layout, opts.comparison_panels)
    return summary


def _summarize_job(results: dict[str, list[RunResult]], paths: dict[str, Path], configs: dict[str, Any],
                   init: Path | None, out: Path) -> dict[str, Any]:
    """`summarize` with the step costs, the shared-initialisation shares and what the job ran with and where."""
    reference = configs[next(iter(configs))]
    device = training_device(reference)
    shared = {name: shared_fraction(config, init) for name, config in configs.items()} if init else {}
    summary = summarize(results, {name: str(path) for name, path in paths.items()},
                        {name: describe(config) for name, config in configs.items()},
                        step_costs(configs, out / STEP_COST_FILE), shared)
    summary.update(crop=reference.data.patch_size, batch=reference.data.batch_size, threads=torch.get_num_threads(),
                   step_device=device.type, paired=init is not None, machine=_machine(device))
    return summary


def _write_report(summary: dict[str, Any], results: dict[str, list[RunResult]], test: tuple[Path, ...], out: Path,
                  layout: Layout, panel_count: int) -> None:
    """The curves, the paired differences, the comparison panels of the first seed's runs and the report."""
    seeds, reference = summary["seeds"], summary["reference"]
    first = [runs[0] for runs in results.values()]
    val_records = first[0].val_records
    plot = plot_curves({name: [run.curve for run in runs] for name, runs in results.items()}, out / layout.curves,
                       title=f"validation PSNR, {summary['iterations']} iterations per run"
                             + (f" (mean over {len(seeds)} seeds, band = min-max)" if len(seeds) > 1 else ""),
                       baseline=val_records[0].get("input_psnr") if val_records else None)
    differences = None
    if len(seeds) > 1 and len(results) > 1:
        differences = plot_differences(
            {name: validation_differences(runs, results[reference]) for name, runs in list(results.items())[1:]},
            {row["name"]: row["paired_psnr"] for row in summary["rows"][1:] if row["paired_psnr"]},
            out / layout.differences, reference, summary["confidence"])
    panels = comparison_panels(first, test, out / "panels", panel_count)
    atomic_write_text(out / layout.report, render_markdown(summary, layout.title, plot, panels, out, differences))


def _machine(device: torch.device) -> str:
    gpu = f"{torch.cuda.get_device_name(device)}, " if device.type == "cuda" else ""
    return f"{gpu}{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def _read_plan(opts: AblationOptions, out: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """OUT/plan.json, refused when its runs were made on other data, and what this job asks for."""
    data = (asdict(opts.plan) | {"use_photos": opts.use_photos} if not (opts.train and opts.test) else
            {"train": [str(p) for p in opts.train], "val": str(opts.val), "test": [str(p) for p in opts.test]})
    budget = {"iterations": opts.iterations} if opts.iterations else _time_budget(opts)
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
    budget = _time_budget(opts)
    if plan is not None and plan["requested"].get("budget") == budget:
        return plan["iterations"], plan["calibrated_step_seconds"]
    # only the model, batch and crop size matter for the time of a step
    steps = {name: calibrate_step_seconds(recipe_config(path, (Path("."),), None, 10**6, opts.seed, opts.overrides))
             for name, path in paths.items()}
    iterations = max(20, int(opts.minutes * 60 * STEP_SHARE / (opts.seeds * sum(steps.values()))) // 10 * 10)
    log.info("step seconds %s -> %d iterations per run for %.1f minutes", steps, iterations, opts.minutes)
    return iterations, steps


def _time_budget(opts: AblationOptions) -> dict[str, Any]:
    budget = {"minutes": opts.minutes, "configs": list(opts.configs)}
    return budget | ({"seeds": opts.seeds} if opts.seeds > 1 else {})  # a folder of the demo (one seed) reads the same


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

    from nafft.engine.config import changed_settings

    other: dict[str, list[str]] = {}
    longer: dict[str, int] = {}
    shorter: dict[str, int] = {}
    for name, seed, config, run_dir in planned:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            continue
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        new = to_dict(config)
        changed = changed_settings(old, new)
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


def step_costs(configs: dict[str, Any], path: Path, steps: int = 5) -> dict[str, dict[str, Any]]:
    """Wall and CPU seconds of one training step (forward, the config's loss, backward, AdamW) of every config at
    its batch and crop size, on its training device with this process's threads, measured once per folder and kept
    in `path` (measured again when the model, batch, crop, loss, precision, device or thread count differ)."""
    stored = json.loads(path.read_text()) if path.is_file() else {}
    costs = {}
    for name, config in configs.items():
        key = json.loads(json.dumps({
            "model": to_dict(config.model_config()), "batch": config.data.batch_size, "crop": config.data.patch_size,
            "loss": to_dict(config.loss), "threads": torch.get_num_threads(), "channels_last": config.train.channels_last,
            "amp": config.train.amp, "device": training_device(config).type,
        }))  # fmt: skip
        if stored.get(name, {}).get("key") != key:
            wall, cpu = time_training_steps(config, steps)
            stored[name] = {"key": key, "wall_seconds": wall, "cpu_seconds": cpu}
        costs[name] = {"wall_seconds": stored[name]["wall_seconds"], "cpu_seconds": stored[name]["cpu_seconds"],
                       "threads": key["threads"], "device": key["device"]}
    atomic_write_text(path, json.dumps(stored, indent=2) + "\n")
    return costs


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _mean_or_none(values: list[float | None]) -> float | None:
    return statistics.fmean(values) if values and None not in values else None


def summarize(results: dict[str, list[RunResult]], configs: dict[str, str], descriptions: dict[str, str],
              costs: dict[str, dict[str, Any]] | None = None, shared: dict[str, float] | None = None,
              level: float = CONFIDENCE) -> dict:
    """The one summary of a job: per config (first = reference) its runs in seed order (`RunResult.record`),
    PSNR/SSIM mean and standard deviation over them, the paired comparison with the reference (per seed the
    difference of the two runs of that seed; their mean, spread and Student-t interval, `stats.paired_interval`),
    the step cost (`step_costs`), the share of parameters that started from the shared initialisation, and the
    means of the other columns; `cpu_hours`: training (with validation and checkpoints) and evaluation of all runs."""
    rows = []
    for name, runs in results.items():
        records = [run.record() for run in runs]
        psnr_mean, psnr_std = _mean_std([r["psnr"] for r in records])
        ssim_mean, ssim_std = _mean_std([r["ssim"] for r in records])
        cost = (costs or {}).get(name, {})
        rows.append({
            "name": name, "config": configs[name], "description": descriptions[name],
            "params": runs[0].params, "macs": runs[0].macs, "runs": records,
            "psnr_mean": psnr_mean, "psnr_std": psnr_std, "ssim_mean": ssim_mean, "ssim_std": ssim_std,
            "improved_images": statistics.fmean(r["improved_images"] for r in records),
            "ms_per_image": statistics.fmean(r["ms_per_image"] for r in records),
            "train_seconds": _mean_or_none([r["train_seconds"] for r in records]),
            "train_cpu_seconds": _mean_or_none([r["train_cpu_seconds"] for r in records]),
            "step_cpu_seconds": cost.get("cpu_seconds"), "step_wall_seconds": cost.get("wall_seconds"),
            "shared_init": (shared or {}).get(name),
        })  # fmt: skip
    reference = rows[0]
    for row in rows:
        row["delta_psnr"] = row["psnr_mean"] - reference["psnr_mean"]
        row["delta_ssim"] = row["ssim_mean"] - reference["ssim_mean"]
        for key in ("psnr", "ssim"):
            if row is reference:
                row[f"paired_{key}"] = None
                continue
            seeds, diffs = paired_differences(row["runs"], reference["runs"], key)
            row[f"paired_{key}"] = ({"seeds": seeds, "differences": diffs, **paired_interval(diffs, level)}
                                    if diffs else None)
    pairwise = []  # any two configs, paired by seed: e.g. the FFT loss as nafft-v2 minus nafft-v2-psnr
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            seeds, diffs = paired_differences(a["runs"], b["runs"], "psnr")
            if len(diffs) > 1:
                pairwise.append({"a": a["name"], "b": b["name"], "seeds": seeds, "differences": diffs,
                                 **paired_interval(diffs, level)})
    parts = [r.get(k) for row in rows for r in row["runs"] for k in ("train_cpu_seconds", "eval_cpu_seconds")]
    first = next(iter(results.values()))[0].summary
    return {"input_psnr": first["input_psnr"], "input_ssim": first["input_ssim"], "test_images": first["images"],
            "macs_at": "256x256", "reference": reference["name"], "confidence": level,
            "cpu_hours": sum(parts) / 3600 if parts and None not in parts else None, "rows": rows,
            "pairwise_psnr": pairwise}


def _resolved(paired: dict[str, Any] | None) -> str:
    if not paired or paired["low"] is None:
        return ""
    if not paired["resolved"]:
        return "no"
    return "yes: better" if paired["mean"] > 0 else "yes: worse"


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The summary as table cells, the blurry input first: the one table behind the report and the console."""
    multi = len(summary["seeds"]) > 1
    images = summary["test_images"]
    rows = [{"model": "blurry input", "PSNR (dB)": f"{summary['input_psnr']:.2f}",
             "SSIM": f"{summary['input_ssim']:.4f}"}]
    for i, row in enumerate(summary["rows"]):
        minutes = row["train_seconds"] / 60 if row["train_seconds"] else None
        paired = row.get("paired_psnr")
        interval = (f"[{paired['low']:+.3f}, {paired['high']:+.3f}]" if paired and paired["low"] is not None
                    else "")
        step = row.get("step_wall_seconds" if summary.get("step_device") == "cuda" else "step_cpu_seconds")
        rows.append({
            "model": row["name"], "what it is": row["description"], "params": f"{row['params']:,}",
            "GMACs @256": f"{row['macs'] / 1e9:.2f}", "CPU s / step": f"{step:.3f}" if step else "",
            "PSNR (dB)": f"{row['psnr_mean']:.2f}" + (f" +- {row['psnr_std']:.2f}" if multi else ""),
            "SSIM": f"{row['ssim_mean']:.4f}" + (f" +- {row['ssim_std']:.4f}" if multi else ""),
            "gain (dB)": f"{row['psnr_mean'] - summary['input_psnr']:+.2f}",
            "improved": f"{row['improved_images']:g}/{images}", "ms / image": f"{row['ms_per_image']:.0f}",
            "training time": f"{minutes:.1f} min" if minutes else "",
            "delta PSNR (dB)": "(reference)" if i == 0 else f"{row['delta_psnr']:+.3f}" if multi else
                               f"{row['delta_psnr']:+.2f}",
            "95% interval": interval, "resolved": "" if i == 0 else _resolved(paired),
            "delta SSIM": "" if i == 0 else f"{row['delta_ssim']:+.4f}",
        })  # fmt: skip
    return rows


REPORT_COLUMNS = ("model", "what it is", "params", "GMACs @256", "CPU s / step", "PSNR (dB)", "delta PSNR (dB)",
                  "95% interval", "resolved", "SSIM", "delta SSIM", "gain (dB)", "improved", "ms / image",
                  "training time")
# cell -> short header; the demo's (one seed) and the paired ablation's (several seeds)
CONSOLE_COLUMNS = {"model": "model", "PSNR (dB)": "PSNR dB", "SSIM": "SSIM", "gain (dB)": "gain dB",
                   "improved": "improved", "params": "params", "ms / image": "ms/img"}
PAIRED_CONSOLE_COLUMNS = {"model": "model", "PSNR (dB)": "PSNR dB", "delta PSNR (dB)": "delta dB",
                          "95% interval": "95% interval", "resolved": "resolved", "params": "params",
                          "CPU s / step": "CPU s/step"}


def validation_differences(runs: list[RunResult], reference: list[RunResult]) -> list[list[tuple[int, float]]]:
    """Per seed, (iteration, validation PSNR of the run minus the reference run of that seed) where both have one."""
    by_seed = {run.seed: dict(run.curve) for run in reference}
    return [[(i, psnr - by_seed[run.seed][i]) for i, psnr in run.curve if i in by_seed.get(run.seed, {})]
            for run in runs]


def render_markdown(summary: dict[str, Any], title: str, plot: Path, panels: list[Path], out: Path,
                    differences: Path | None = None) -> str:
    """The report: what was run, the table, how to read it, per-seed differences, extended runs, cost, the
    curves, the comparison panels, per-run reports."""
    seeds = summary["seeds"]
    multi = len(seeds) > 1
    rows = summary["rows"]
    lines = [f"# {title}", ""]
    if summary.get("command"):
        lines += ["```bash", summary["command"], "```", ""]
    lines += [
        f"{summary['iterations']} iterations per run"
        + (f" of batch {summary['batch']}, {summary['crop']}x{summary['crop']} crops" if summary.get("crop") else "")
        + f", seed{'s' if multi else ''} {', '.join(map(str, seeds))}; training data {', '.join(summary['train'])}; "
        f"held-out test set of {summary['test_images']} images ({', '.join(summary['test'])}); PSNR and SSIM "
        f"(MATLAB/BasicSR 2-D) on 8-bit RGB, TLC on"
        f"{f', mean +- standard deviation over {len(seeds)} seeds' if multi else ''}. Machine: {summary['machine']}."
        + (f" Settings changed for every config: {' '.join(summary['overrides'])}." if summary.get("overrides")
           else ""),
        "",
        "| " + " | ".join(REPORT_COLUMNS) + " |",
        "|---|---|" + "---:|" * (len(REPORT_COLUMNS) - 2),
    ]
    if summary.get("step_device") == "cuda":  # a GPU step's cost is its wall time
        lines[-2] = lines[-2].replace("| CPU s / step |", "| GPU s / step |")
    for cells in table_rows(summary):
        name = cells["model"] if cells["model"] == "blurry input" else f"`{cells['model']}`"
        lines.append("| " + " | ".join([name, *(cells.get(c, "") for c in REPORT_COLUMNS[1:])]) + " |")
    if multi:
        lines += _paired_notes(summary)
    extended = summary.get("extended_from") or {}
    if extended:
        froms = ", ".join(str(v) for v in sorted(set(extended.values())))
        lines += ["", f"**Extended runs:** {len(extended)} run(s) were trained for {froms} iterations and then "
                      f"continued to {summary['iterations']} with a new schedule ({', '.join(extended)}); they are "
                      f"not the same as runs trained for {summary['iterations']} iterations from the start."]
    what = ("GPU s / step: wall seconds of" if summary.get("step_device") == "cuda" else
            f"CPU s / step: CPU seconds ({summary.get('threads', '?')} torch thread(s)) of")
    cost = [f"{what} one training step (forward, the config's loss, backward, AdamW) at the run's batch and crop "
            f"size, median of 5; GMACs: one forward pass at 256x256 after folding."]
    if summary.get("cpu_hours") is not None:
        cost.append(f"The whole job took {summary['cpu_hours']:.2f} CPU hours (training with its validations and "
                    f"checkpoints, and the evaluations, of all {sum(len(r['runs']) for r in rows)} runs).")
    lines += ["", " ".join(cost)]
    lines += ["", f"![validation PSNR curves]({plot.relative_to(out).as_posix()})", ""]
    if differences is not None:
        lines += [f"![paired differences to {summary['reference']}]({differences.relative_to(out).as_posix()})", ""]
    if panels:
        names = " | ".join(row["name"] for row in rows)
        lines += ["## Comparison panels", "", f"blur | {names} | sharp", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in panels] + [""]
    reports = []
    for row in rows:
        for run in row["runs"]:
            link = Path(os.path.relpath(Path(run["run_dir"]) / "eval" / "report.md", out)).as_posix()
            reports.append(f"[{row['name']}{' seed ' + str(run['seed']) if multi else ''}]({link})")
    lines += ["Per-run reports: " + ", ".join(reports), ""]
    return "\n".join(lines)


def _paired_notes(summary: dict[str, Any]) -> list[str]:
    """How to read the paired columns, the shared initialisation, and the per-seed differences."""
    rows, reference, seeds = summary["rows"], summary["reference"], summary["seeds"]
    level = round(100 * summary.get("confidence", CONFIDENCE))
    lines = [
        "",
        f"**How to read it.** delta PSNR is paired: for every seed, the variant's test PSNR minus `{reference}`'s "
        f"on the same seed, then the mean over the {len(seeds)} seeds; the {level}% interval is "
        f"mean +- t(n-1) x s / sqrt(n) (Student t, s = the standard deviation of the per-seed differences, "
        f"below). **resolved** only where that interval excludes 0 (yes: better / yes: worse); \"no\" means this "
        f"budget cannot tell the variant from the reference, not that it has no effect.",
    ]
    shared = {row["name"]: row["shared_init"] for row in rows if row.get("shared_init") is not None}
    if shared:
        lines += ["", f"**Pairing.** Every run of a seed sees the same training batches (crops and flips are a "
                      f"function of the seed and the sample number) and starts from `{reference}` initialised with "
                      f"that seed (init/{reference}-seed*.safetensors), wherever the architectures share tensors "
                      f"(DO-Conv kernels take the same 3x3 weights); the rest keeps the variant's own seeded "
                      f"initialisation. Share of each variant's parameters from the shared initialisation: "
                      + ", ".join(f"`{name}` {_share(share)}" for name, share in shared.items())
                      + " (DO-Conv's D, zero at the start of every run, counts as not shared)."]
    else:
        lines += ["", "**Pairing.** Every run of a seed sees the same training batches; each starts from its own "
                      "seeded initialisation (no shared initialisation: `--independent-init`)."]
    head = ["variant", *(f"seed {s}" for s in seeds), "mean", "spread (s)"]
    lines += ["", f"Per-seed PSNR differences to `{reference}` (dB):", "", "| " + " | ".join(head) + " |",
              "|---|" + "---:|" * (len(head) - 1)]
    for row in rows[1:]:
        paired = row.get("paired_psnr")
        if not paired:
            continue
        by_seed = dict(zip(paired["seeds"], paired["differences"]))
        cells = [f"{by_seed[s]:+.3f}" if s in by_seed else "" for s in seeds]
        spread = f"{paired['std']:.3f}" if paired["std"] is not None else ""
        lines.append(f"| `{row['name']}` | " + " | ".join([*cells, f"{paired['mean']:+.3f}", spread]) + " |")
    spreads = [row["paired_psnr"]["std"] for row in rows[1:] if row.get("paired_psnr") and row["paired_psnr"]["std"]]
    if spreads:
        lines += ["", f"Largest spread of the paired differences: {max(spreads):.3f} dB (median "
                      f"{statistics.median(spreads):.3f} dB)."]
    pairwise = {(p["a"], p["b"]): p for p in summary.get("pairwise_psnr") or []}
    if len(rows) > 2 and pairwise:
        names = [row["name"] for row in rows]
        lines += ["", f"Any two configs, paired by seed: column minus row, mean PSNR difference in dB (the first "
                      f"row is the delta column above); * where its {level}% interval excludes 0 (intervals in "
                      f"ablation.json, `pairwise_psnr`, as a minus b):", "",
                  "| | " + " | ".join(f"`{n}`" for n in names[1:]) + " |", "|---|" + "---:|" * (len(names) - 1)]
        for i, a in enumerate(names[:-1]):
            cells = []
            for j, b in enumerate(names[1:], start=1):
                p = pairwise.get((a, b))
                cells.append("" if j <= i or p is None else f"{-p['mean']:+.3f}{'*' if p['resolved'] else ''}")
            lines.append(f"| `{a}` | " + " | ".join(cells) + " |")
    return lines


def _share(fraction: float) -> str:
    return ">99.9%" if 0.999 < fraction < 1 else f"{fraction:.1%}"


def format_table(summary: dict[str, Any]) -> str:
    """The console table: the report's table without its wide columns."""
    columns = PAIRED_CONSOLE_COLUMNS if len(summary["seeds"]) > 1 else CONSOLE_COLUMNS
    header = list(columns.values())
    rows = [[cells.get(c, "") for c in columns] for cells in table_rows(summary)]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r).rstrip() for r in (header, *rows))
