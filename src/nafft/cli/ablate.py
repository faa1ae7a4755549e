"""`nafft ablate`: train configs for the same budget and seeds, evaluate on one held-out set, tabulate."""

from __future__ import annotations

import argparse
from pathlib import Path

from nafft.cli.args import add_threads_argument, positive_float, positive_int
from nafft.cli.demo import add_data_arguments
from nafft.experiments.ablate import DEFAULT_CONFIGS

HELP = "train several configs for the same budget and seeds, evaluate on one held-out set, write a table and curves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="CONFIG",
                        help="recipe names (nafft configs) or files; the first is the reference (default: the notes' "
                             f"five and three FFT ideas: {' '.join(DEFAULT_CONFIGS)})")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=positive_int, default=None,
                        help="training iterations of every run (default 1000)")
    budget.add_argument("--minutes", type=positive_float, default=None,
                        help="instead of --iterations: training time of the whole job (configs x seeds), turned into "
                             "one iteration count by timing a few steps of each config here (once per folder)")
    parser.add_argument("--seeds", type=positive_int, default=3,
                        help="runs per config (seeds --seed, --seed+1, ...; default 3, the fewest that give a paired "
                             "interval worth reading)")
    parser.add_argument("--seed", type=int, default=42, help="first training seed")
    parser.add_argument("--independent-init", action="store_true",
                        help="every run starts from its own seeded initialisation (default: the paired design, every "
                             "run of a seed starts from the first config's initialisation wherever the architectures "
                             "share tensors)")
    parser.add_argument("-o", "--out", type=Path, default=Path("runs/ablation"), help="output folder")
    parser.add_argument("--extend", action="store_true",
                        help="continue the runs of OUT trained with fewer --iterations to the new budget (without it "
                             "such a folder is refused; the table says which runs were extended)")
    parser.add_argument("--train", nargs="+", type=Path, default=[], metavar="DIR",
                        help="training pair folders (default: synthesised under OUT/data)")
    parser.add_argument("--val", type=Path, default=None, metavar="DIR", help="validation pairs for the curves")
    parser.add_argument("--test", nargs="+", type=Path, default=[], metavar="DIR", help="held-out pair folders")
    add_data_arguments(parser)
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override keys of every config, e.g. --set data.batch_size=16")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nafft.cli.demo import run_job, synth_plan
    from nafft.errors import UserError
    from nafft.experiments.ablate import AblationOptions

    if bool(args.train) != bool(args.test):
        raise UserError("--train and --test go together (or leave both out to synthesise the data)")
    iterations = args.iterations or (None if args.minutes else 1000)
    run_job(AblationOptions(configs=tuple(args.configs), iterations=iterations, minutes=args.minutes,
                            seeds=args.seeds, seed=args.seed, shared_init=not args.independent_init, out=args.out,
                            train=tuple(args.train), val=args.val, test=tuple(args.test), plan=synth_plan(args),
                            use_photos=not args.no_photos, overrides=tuple(args.overrides), extend=args.extend,
                            command=command_line(args)))
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The job as one `nafft ablate` command with every option that shapes its results spelled out (for the
    report)."""
    import shlex

    words = ["nafft", "ablate", "--configs", *args.configs]
    words += ["--minutes", f"{args.minutes:g}"] if args.minutes else ["--iterations", str(args.iterations or 1000)]
    words += ["--seeds", str(args.seeds), "--seed", str(args.seed)]
    if args.independent_init:
        words.append("--independent-init")
    for flag, value in (("--train", args.train), ("--val", args.val), ("--test", args.test)):
        if value:
            words += [flag, *map(str, value if isinstance(value, list) else [value])]
    for flag, value in (("--train-pairs", args.train_pairs), ("--test-pairs", args.test_pairs),
                        ("--val-pairs", args.val_pairs), ("--train-size", args.train_size),
                        ("--blur-strength", args.blur_strength)):
        if value is not None and not args.train:
            words += [flag, f"{value:g}"]
    if args.no_photos and not args.train:
        words.append("--no-photos")
    if args.overrides:
        words += ["--set", *args.overrides]
    if args.extend:
        words.append("--extend")
    if getattr(args, "threads", None):
        words += ["--threads", str(args.threads)]
    return shlex.join([*words, "-o", str(args.out)])
