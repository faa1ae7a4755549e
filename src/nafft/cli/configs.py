"""`nafft configs`: the training recipes shipped with nafft: list them, show one, copy one to start from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nafft.errors import UserError

HELP = "list the shipped training recipes, show one (--resolved: every default filled in) or copy one to edit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="the recipes with their first comment line (the default action)")
    show = sub.add_parser("show", help="print a recipe file")
    show.add_argument("name", metavar="NAME", help="a recipe name or a YAML file")
    show.add_argument("--resolved", action="store_true",
                      help="the config `nafft train` would use: base chain merged, every default and model field")
    copy = sub.add_parser("copy", help="write a recipe to a file of your own (its base chain merged in)")
    copy.add_argument("name", metavar="NAME", help="a recipe name or a YAML file")
    copy.add_argument("dest", metavar="DEST", help="the new file, or a folder (existing, or ending in /) for NAME.yaml")
    copy.add_argument("--force", action="store_true", help="replace DEST when it exists")


def summary_line(path: Path) -> str:
    """The first comment line of a recipe file (its one-line description), or ''."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def standalone_text(path: Path) -> str:
    """A recipe as one file that needs no other: verbatim when it has no `base:`, else its header comments followed
    by the merged mapping (what `nafft train -c` reads from the chain)."""
    from nafft.engine.config import read_config_file
    from nafft.typed_config import dump_yaml, load_yaml

    text = path.read_text(encoding="utf-8")
    if "base" not in load_yaml(path):
        return text
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    header.append(f"# Copied from nafft's recipe {path.stem} with its base chain merged in.")
    return "\n".join(header) + "\n" + dump_yaml(read_config_file(path))


def run(args: argparse.Namespace) -> int:
    from nafft.engine.config import build_config, find_config, package_configs, recipe_names

    action = args.action or "list"
    if action == "list":
        names = recipe_names()
        width = max(map(len, names))
        for name in names:
            print(f"{name:<{width}}  {summary_line(package_configs() / (name + '.yaml'))}")
        print(f"\n{len(names)} recipes in {package_configs()}; `nafft configs show NAME`, `nafft configs copy NAME "
              "DEST`, `nafft train -c NAME`", file=sys.stderr)
        return 0
    path = find_config(args.name)
    if action == "show":
        if args.resolved:
            from nafft.engine.config import read_config_file

            print(build_config(read_config_file(path), source=str(path)).to_yaml(), end="")
        else:
            print(path.read_text(encoding="utf-8"), end="")
        return 0
    from nafft.atomic_files import atomic_write_text

    dest = Path(args.dest)
    if dest.is_dir() or args.dest.endswith(("/", "\\")):
        dest = dest / path.name
    if dest.exists() and not args.force:
        raise UserError(f"{dest}: exists; pass --force to replace it")
    atomic_write_text(dest, standalone_text(path))
    print(f"wrote {dest}; edit it, then: nafft train -c {dest} -o runs/{dest.stem}")
    return 0
