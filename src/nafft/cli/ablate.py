"""`nafft ablate`: train configs for the same budget and seeds, evaluate on one held-out set, tabulate."""

from __future__ import annotations

import argparse
from pathlib import Path

from nafft.cli.args import add_threads_argument, positive_int
from nafft.cli.demo import add_data_arguments
from nafft.experiments.ablate import DEFAULT_CONFIGS

HELP = "train several configs for the same budget and seeds, evaluate on one held-out set, write a table and curves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="CONFIG",
                        help="recipe names (nafft configs) or files; the first is the reference (default: the notes' "
                             f"five: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--iterations", type=positive_int, default=1000, help="training iterations of every run")
    parser.add_argument("--seeds", type=positive_int, default=2, help="runs per config (seeds --seed, --seed+1, ...)")
    parser.add_argument("--seed", type=int, default=42, help="first training seed")
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
    run_job(AblationOptions(configs=tuple(args.configs), iterations=args.iterations, seeds=args.seeds, seed=args.seed,
                            out=args.out, train=tuple(args.train), val=args.val, test=tuple(args.test),
                            plan=synth_plan(args), use_photos=not args.no_photos, overrides=tuple(args.overrides),
                            extend=args.extend))
    return 0
