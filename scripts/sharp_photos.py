"""Collect the sharp photographs nafft's default model is trained, validated and tested on, split by photograph.

Sources (the only ones this project uses for training, validation and choosing settings):
- the sample photographs inside installed Python packages (scikit-image, scikit-learn, matplotlib);
- four Debian wallpaper packages, fetched with `apt-get download` and unpacked with `dpkg-deb -x` (photographs
  only; the drawings and renderings in them are left out).

Usage:  python scripts/sharp_photos.py OUT        (writes OUT/train, OUT/val, OUT/test; needs apt-get, dpkg-deb)

The split is by photograph, so no test crop shares a picture with training. `test` holds the demo's held-out
photographs (chelsea, coffee, rocket) and four more; `val` two photographs for choosing settings.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nafft.data.synth.scenes import package_photos

DEBIAN_PACKAGES = ("ukui-wallpapers", "lomiri-wallpapers-20.04", "gnome-backgrounds", "plasma-workspace-wallpapers")
# Photographs inside those packages (paths under the unpacked packages' usr/share).
WALLPAPER_PHOTOS = (
    "wallpapers/BytheWater/contents/images/2560x1600.jpg",
    "wallpapers/ColdRipple/contents/images/2560x1600.jpg",
    "wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
    "wallpapers/DarkestHour/contents/images/2560x1600.jpg",
    "wallpapers/EveningGlow/contents/images/2560x1600.jpg",
    "wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
    "wallpapers/Grey/contents/images/2560x1600.jpg",
    "wallpapers/Kite/contents/images/2560x1600.jpg",
    "wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
    "wallpapers/Path/contents/images/2560x1600.jpg",
    "wallpapers/summer_1am/contents/images/2560x1600.jpg",
    "backgrounds/Infinite-Sea_by_Aury88.jpg",
    "backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
)
TEST = ("chelsea.png", "coffee.png", "rocket.jpg", "grace_hopper.jpg", "flower.jpg", "Path.jpg", "Kleiber.jpg")
VAL = ("china.jpg", "Kite.jpg")


def _short_name(relative: str) -> str:
    parts = relative.split("/")
    if parts[0] == "wallpapers":
        return parts[1] + Path(relative).suffix
    return Path(relative).name.split("_by_")[0] + Path(relative).suffix


def fetch_wallpapers(folder: Path) -> list[Path]:
    """Download and unpack the wallpaper packages into `folder`; the photographs' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=folder, check=True)
    for deb in sorted(folder.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "root")], check=True)
    photos = [folder / "root/usr/share" / p for p in WALLPAPER_PHOTOS]
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise SystemExit(f"not in the downloaded packages (another package version?): {', '.join(missing)}")
    return photos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {p.name: p for p in package_photos()}
        sources.update({_short_name(rel): path for rel, path in
                        zip(WALLPAPER_PHOTOS, fetch_wallpapers(Path(tmp)))})
        counts = {"train": 0, "val": 0, "test": 0}
        for name, path in sorted(sources.items()):
            split = "test" if name in TEST else "val" if name in VAL else "train"
            target = args.out / split / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            counts[split] += 1
    print(", ".join(f"{n} {split}" for split, n in counts.items()) + f" photographs in {args.out}")
    missing = sorted(set(TEST + VAL) - set(sources))
    if missing:
        print(f"not available here (package not installed?): {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
