"""Argument types and options shared by the subcommands: one spelling and one range check per kind of value.

A value outside its range is refused by argparse before the command does any work, with one line that names the
option, the value and the accepted range (`nafft deblur: error: argument --threads: expected an integer >= 1, got 0`).
"""

from __future__ import annotations

import argparse
import math


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def strength(text: str) -> float | str:
    """"auto" or a number from 0 to 1 (`nafft.inference.predict.check_strength`)."""
    from nafft.errors import UserError
    from nafft.inference.predict import check_strength

    try:
        return check_strength(text)
    except UserError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number from 0 to 1, got '{text}'") from None


def unit_float(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def device(text: str) -> str:
    """auto, cpu, cuda or cuda:N (whether this machine has that device is checked when the command starts)."""
    kind, _, index = text.partition(":")
    if text in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got '{text}'")


THREADS_HELP = (
    "CPU threads for PyTorch (default: one per core). On a machine other jobs are using, 1 is often much faster "
    "than more (docs/benchmarks.md: shared machines)"
)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """`--threads N`: applied by `nafft.cli.main` before the command runs (also for the processes it starts)."""
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=THREADS_HELP)


def set_threads(threads: int) -> None:
    """Use `threads` intra-op threads in this process and in the Python processes it starts."""
    import os

    import torch

    torch.set_num_threads(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
