"""benchmarks/default_model.py: per-set statistics, and compare (two quality runs read image by image)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from default_model import set_statistics  # noqa: E402


def test_set_statistics_give_gains_and_the_brightness_shift_in_8_bit_levels(tmp_path):
    (tmp_path / "set" / "sharp").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    target = np.full((8, 8, 3), 100, np.uint8)
    for name, level in (("a", 104), ("b", 97)):  # outputs 4 levels brighter and 3 darker than their targets
        Image.fromarray(target).save(tmp_path / "set" / "sharp" / f"{name}.png")
        Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(tmp_path / "out" / f"{name}.png")
    rows = [{"name": "a.png", "gain": 1.5, "input_psnr": 30.0, "psnr": 31.5},
            {"name": "b.png", "gain": -0.5, "input_psnr": 32.0, "psnr": 31.5}]
    stats = set_statistics(rows, tmp_path / "out", tmp_path / "set")
    assert stats["gain"] == 0.5 and stats["worst_gain"] == -0.5 and stats["worst_image"] == "b.png"
    assert stats["improved"] == 1 and stats["input_psnr"] == 31.0
    assert abs(stats["brightness_shift"] - 0.5) < 1e-4 and abs(stats["largest_brightness_shift"] - 4.0) < 1e-4


def write_run(run: Path, psnrs: dict[str, tuple[float, float]]) -> None:
    (run / "shake").mkdir(parents=True)
    lines = ["name,psnr,input_psnr"] + [f"{name},{out},{inp}" for name, (out, inp) in psnrs.items()]
    (run / "shake" / "per_image.csv").write_text("\n".join(lines) + "\n")


def compare(base: Path, candidate: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "default_model.py"), "compare", "--base",
                           str(base), "--out", str(candidate), "--set", "shake"], capture_output=True, text=True)


def test_compare_reports_paired_mean_median_and_the_largest_losses(tmp_path):
    write_run(tmp_path / "base", {"a.png": (30.0, 28.0), "b.png": (25.0, 24.0), "c.png": (33.0, 32.0)})
    write_run(tmp_path / "cand", {"a.png": (30.5, 28.0), "b.png": (21.0, 24.0), "c.png": (33.25, 32.0)})
    done = compare(tmp_path / "base", tmp_path / "cand")
    assert done.returncode == 0, done.stderr
    # differences +0.5, -4.0, +0.25: mean -1.083, median +0.25
    assert ("shake: 3 images, candidate - base PSNR: mean -1.083 dB, median +0.250 dB; better on 2, worse on 1; "
            "largest losses b.png -4.00, c.png +0.25, a.png +0.50") in done.stdout


def test_compare_refuses_runs_of_different_images(tmp_path):
    write_run(tmp_path / "base", {"a.png": (30.0, 28.0)})
    write_run(tmp_path / "cand", {"z.png": (30.0, 28.0)})
    done = compare(tmp_path / "base", tmp_path / "cand")
    assert done.returncode != 0 and "shake: the two runs scored different images" in done.stderr
