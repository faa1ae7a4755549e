"""benchmarks/default_model.py compare: two quality runs read image by image."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
