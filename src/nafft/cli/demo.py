"""`nafft demo`: the main job, end to end on synthetic data with zero downloads (what `make demo` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nafft.cli.args import add_threads_argument, positive_float, positive_int
from nafft.experiments.demo import DEFAULT_MODELS

HELP = ("synthesise data, train NAFNet and NAFFT-Net for an equal budget, evaluate both and the bundled default "
        "model, report (CPU, minutes)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="CONFIG",
                        help=f"training recipes (names or files; default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--minutes", type=positive_float, default=6.0,
                        help="training time for all models together; sets the (equal) iteration count (default 6)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="a fixed iteration count instead of --minutes")
    add_data_arguments(parser)
    parser.add_argument("--seed", type=int, default=42, help="training seed")
    add_threads_argument(parser)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic data options of the demo and the ablation runner."""
    parser.add_argument("--train-pairs", type=positive_int, default=None,
                        help="dead-leaves training pairs (default 240; photographs add half as many)")
    parser.add_argument("--test-pairs", type=positive_int, default=None, help="held-out pairs per source (default 12)")
    parser.add_argument("--val-pairs", type=positive_int, default=None, help="validation pairs for the curve (default 6)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="side of the training images (default 128; at least the recipe's crop size)")
    parser.add_argument("--blur-strength", type=positive_float, default=None,
                        help="motion length multiplier of the synthetic blur (default 1, nafft synth's)")
    parser.add_argument("--no-photos", action="store_true", help="dead leaves only, without scikit-image's photos")


def synth_plan(args: argparse.Namespace):
    """The `SynthPlan` of the data options."""
    from dataclasses import replace

    from nafft.experiments.runs import SynthPlan

    plan = SynthPlan()
    if args.train_pairs is not None:
        plan = replace(plan, train_leaves=args.train_pairs, train_photos=args.train_pairs // 2)
    if args.test_pairs is not None:
        plan = replace(plan, test_leaves=args.test_pairs, test_photos=args.test_pairs)
    if args.blur_strength is not None:
        plan = replace(plan, strength=args.blur_strength)
    if args.val_pairs is not None:
        plan = replace(plan, val_pairs=args.val_pairs)
    if args.train_size is not None:
        plan = replace(plan, train_size=args.train_size)
    return plan


def run_job(opts) -> dict:
    """Run an ablation-runner job with progress bars and print its table."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nafft.cli.train import TrainProgress
    from nafft.experiments.ablate import format_table, run_ablation

    with logging_redirect_tqdm():
        summary = run_ablation(opts, callback_factory=lambda name: TrainProgress(True, desc=name),
                               progress=synth_progress())
    seeds = len(summary["seeds"])
    print(f"\n{summary['test_images']} held-out images, {summary['iterations']} training iterations per "
          f"{'model' if seeds == 1 else f'run, {seeds} seeds'} ({summary['machine']}):")
    print(format_table(summary))
    layout = opts.layout
    print(f"\nsummary: {opts.out / layout.summary}   report: {opts.out / layout.report}")
    return summary


def synth_progress():
    """A progress callback for data synthesis: one tqdm bar per folder."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"synth {stage}", unit="pair", file=sys.stderr,
                                     dynamic_ncols=True, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def run(args: argparse.Namespace) -> int:
    from nafft.experiments.demo import demo_options, evaluate_bundled

    summary = run_job(demo_options(out=args.out, models=tuple(args.models), minutes=args.minutes,
                                   iterations=args.iterations, plan=synth_plan(args), use_photos=not args.no_photos,
                                   seed=args.seed))
    bundled = evaluate_bundled(summary, args.out)
    if bundled:
        print(f"\nthe bundled default model {bundled['name']} (trained by nafft, not by this demo) on the same "
              f"{bundled['images']} images: PSNR {bundled['psnr']:.2f} dB, gain "
              f"{bundled['psnr'] - bundled['input_psnr']:+.2f} dB, {bundled['improved_images']}/{bundled['images']} "
              f"improved, {bundled['ms_per_image']:.0f} ms/img, strength {bundled['strength']} (mean "
              f"{bundled['mean_strength']:.2f})")
        for name, r in bundled["per_set"].items():
            print(f"  {name}: {r['input_psnr']:.2f} -> {r['psnr']:.2f} dB ({r['psnr'] - r['input_psnr']:+.2f}), "
                  f"{r['improved_images']}/{r['images']} improved")
        print(f"panels: {args.out / 'panels' / bundled['name']}/")
    return 0
