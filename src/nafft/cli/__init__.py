"""The `nafft` command: one entry point, one module per subcommand.

Each subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and is listed in
`COMMANDS`. The CLI owns the console (logging set-up, progress bars); library code only logs. A `UserError` from
the library is printed as one line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from nafft import __version__
from nafft.errors import UserError
from nafft.malloc_tuning import tune_malloc

# name -> module under nafft.cli; the order is the order of `nafft --help`.
COMMANDS = {
    "prepare": "prepare",
    "synth": "synth",
    "profile": "profile",
    "configs": "configs",
    "train": "train",
    "eval": "eval",
    "deblur": "deblur",
    "serve": "serve",
    "models": "models",
    "export": "export",
    "demo": "demo",
    "ablate": "ablate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nafft", description="Image motion deblurring with NAFNet and NAFFT-Net."
    )
    parser.add_argument("--version", action="version", version=f"nafft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"nafft.cli.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    tune_malloc()  # keep freed activation buffers for reuse (NAFFT_MALLOPT=0 turns this off)
    if getattr(args, "threads", None):
        from nafft.cli.args import set_threads

        set_threads(args.threads)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"nafft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nafft: interrupted", file=sys.stderr)
        return 130
