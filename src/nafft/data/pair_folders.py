"""Finding blurred/sharp image pairs on disk.

Two layouts are recognised, with `blur`/`sharp` or `input`/`target` as the two folder names:

- flat: `ROOT/blur/NAME` and `ROOT/sharp/NAME` (NAME may contain sub-folders);
- split (GoPro, HIDE-style sequences): `ROOT/SEQUENCE/blur/NAME` and `ROOT/SEQUENCE/sharp/NAME`; the pair is
  named `SEQUENCE/NAME`, unique across sequences. Other folders in a sequence (GoPro's `blur_gamma`) are ignored:
  NAFNet trains on `blur`.

Pairs are matched by their relative path. A missing partner, an unreadable file or a size mismatch is a problem;
`scan_pairs` returns the good pairs and one line per problem, `find_pairs` raises them all at once.

Several roots (`gather_pairs`, the one way nafft reads more than one folder: evaluation, the ablation, training):
each pair's name is prefixed with its root's folder name, "test_photos/000047.png", or with as much of the root's
path as tells apart two roots of the same name ("a/test/..." and "b/test/..."), and a folder given twice gets
"~2" after its prefix, so names never collide.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nafft.data.io import ImageReadError, image_size, list_images
from nafft.errors import UserError

# (degraded, clean) folder names, in order of preference.
PAIR_FOLDERS = (("blur", "sharp"), ("input", "target"))


class PairingError(UserError):
    """Problems with a paired data set; the message has one line per problem."""

    def __init__(self, root: str | os.PathLike, problems: list[str]):
        self.root = Path(root)
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{root}: {count} pairing problem{'s' if count != 1 else ''}:\n{lines}")


@dataclass(frozen=True)
class Pair:
    """A blurred image and its sharp partner.

    Attributes:
        name: relative path without the blur/sharp folder, e.g. "GOPR0372_07_00/000047.png" (split layout) or
            "000047.png" (flat layout); unique within one root.
        blur: path of the blurred image.
        sharp: path of the sharp image.
        size: (height, width) when sizes were checked, else None.
    """

    name: str
    blur: Path
    sharp: Path
    size: tuple[int, int] | None = None


def _pair_folders(folder: Path) -> tuple[str, str] | None:
    """The (degraded, clean) folder names used inside `folder`, if any of them exists."""
    for names in PAIR_FOLDERS:
        if any((folder / n).is_dir() for n in names):
            return names
    return None


def _match(group: Path, names: tuple[str, str], prefix: str, problems: list[str]) -> list[tuple[str, Path, Path]]:
    blur_dir, sharp_dir = (group / n for n in names)
    for folder, other in ((blur_dir, sharp_dir), (sharp_dir, blur_dir)):
        if not folder.is_dir():
            problems.append(f"{other}: has no partner folder {folder}")
            return []
    blurs = {p.relative_to(blur_dir).as_posix(): p for p in list_images(blur_dir, recursive=True)}
    sharps = {p.relative_to(sharp_dir).as_posix(): p for p in list_images(sharp_dir, recursive=True)}
    for rel in sorted(blurs.keys() - sharps.keys()):
        problems.append(f"missing {names[1]} partner: {blurs[rel]} (expected {sharp_dir / rel})")
    for rel in sorted(sharps.keys() - blurs.keys()):
        problems.append(f"missing {names[0]} partner: {sharps[rel]} (expected {blur_dir / rel})")
    return [(prefix + rel, blurs[rel], sharps[rel]) for rel in sorted(blurs.keys() & sharps.keys())]


def _fmt(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def scan_pairs(root: str | os.PathLike, check_sizes: bool = True) -> tuple[list[Pair], list[str]]:
    """Find the pairs under `root` without raising for bad ones.

    Args:
        root: a flat pair folder or a split of sequence folders (see the module docstring).
        check_sizes: read every header and report unreadable files and size mismatches.

    Returns:
        The good pairs (sorted by name) and one message per problem (each names the files involved).

    Raises:
        PairingError: `root` is not a folder or holds no pair folders at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise PairingError(root, [f"{root}: not a folder"])
    problems: list[str] = []
    candidates: list[tuple[str, Path, Path]] = []
    names = _pair_folders(root)
    if names is not None:
        candidates = _match(root, names, "", problems)
    else:
        groups = 0
        for sequence in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            names = _pair_folders(sequence)
            if names is not None:
                groups += 1
                candidates += _match(sequence, names, f"{sequence.name}/", problems)
        if groups == 0:
            expected = " or ".join(f"ROOT/{a} + ROOT/{b}" for a, b in PAIR_FOLDERS)
            raise PairingError(root, [f"{root}: no pair folders found (expected {expected}, "
                                      "or ROOT/SEQUENCE/blur + ROOT/SEQUENCE/sharp)"])
    pairs = []
    for name, blur, sharp in candidates:
        size = None
        if check_sizes:
            try:
                size = image_size(blur)
                sharp_size = image_size(sharp)
            except ImageReadError as exc:
                problems.append(f"unreadable: {exc}")
                continue
            if size != sharp_size:
                problems.append(f"size mismatch: {blur} is {_fmt(size)} but {sharp} is {_fmt(sharp_size)}")
                continue
        pairs.append(Pair(name, blur, sharp, size))
    return pairs, problems


def find_pairs(root: str | os.PathLike, check_sizes: bool = True) -> list[Pair]:
    """All pairs under `root`, sorted by name.

    Raises:
        PairingError: listing every problem (missing partner, unreadable file, size mismatch), one per line, or
            saying that no pairs were found.
    """
    pairs, problems = scan_pairs(root, check_sizes)
    if problems:
        raise PairingError(root, problems)
    if not pairs:
        raise PairingError(root, [f"{root}: no image pairs found"])
    return pairs


Roots = str | os.PathLike | Sequence[str | os.PathLike]


def root_prefixes(roots: Sequence[str | os.PathLike]) -> list[str]:
    """The name prefix of each root: its folder name, or the shortest tail of its absolute path that no other root
    shares; a folder given again (to weight it in training) gets "~2", "~3"... after its prefix."""
    paths = [Path(os.path.abspath(root)) for root in roots]
    prefixes = []
    for i, path in enumerate(paths):
        depth = 1
        while depth < len(path.parts) and any(
            other != path and other.parts[-depth:] == path.parts[-depth:] for other in paths
        ):
            depth += 1
        repeat = paths[:i].count(path)
        prefixes.append("/".join(path.parts[-depth:]) + (f"~{repeat + 1}" if repeat else ""))
    return prefixes


def gather_pairs(roots: Roots, check_sizes: bool = True) -> tuple[list[Pair], list[str]]:
    """The pairs of one root (named as `scan_pairs` names them) or of several (in root order, each name prefixed
    with `root_prefixes`), and one line per problem.

    Raises:
        PairingError: a root that is not a pair folder.
    """
    if isinstance(roots, (str, os.PathLike)):
        return scan_pairs(roots, check_sizes)
    pairs: list[Pair] = []
    problems: list[str] = []
    for root, prefix in zip(roots, root_prefixes(roots)):
        found, more = scan_pairs(root, check_sizes)
        pairs += [replace(p, name=f"{prefix}/{p.name}") for p in found]
        problems += more
    return pairs, problems
