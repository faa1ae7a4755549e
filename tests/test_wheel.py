"""The wheel a user installs works outside the checkout: build it, install it into a fresh virtual environment and
run `nafft demo` and `nafft ablate` at their smallest budgets in an empty folder, and `nafft deblur` with the bundled
default model (no checkpoint argument).

No network: the wheel is built with the setuptools of this environment, and the fresh environment sees only the
distributions nafft declares (and theirs), linked from this environment, so a missing dependency fails here too.
scikit-image is an extra and is left out, which is how a plain `pip install nafft` runs the demo.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _requirements(requires: list[str] | None) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for line in requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def link_dependencies(requires: list[str], target: Path) -> list[str]:
    """Symlink the top-level files of every distribution `requires` needs (recursively) into `target`."""
    target.mkdir()
    seen: set[str] = set()
    todo = _requirements(requires)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        root = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if top != "__pycache__" and not (target / top).exists():
                (target / top).symlink_to(root / top)
        todo += _requirements(dist.requires)
    return sorted(seen)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_runs_demo_and_ablate_in_an_empty_folder(tmp_path):
    # build from a copy, so that the shared checkout gets no build/ or egg-info
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip", "--quiet"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("nafft-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        requires = [line.split(":", 1)[1].strip() for line in archive.read(
            next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
            if line.startswith("Requires-Dist:")]
    assert "nafft/configs/nafnet-small.yaml" in names and "nafft/configs/nafft-photo.yaml" in names
    assert "nafft/weights/nafft-photo.safetensors" in names
    assert "nafft/weights/guards/nafft-photo.safetensors" in names  # its strength guard (--strength auto)
    assert {"nafft/app/static/index.html", "nafft/app/static/app.js", "nafft/app/static/app.css"} <= set(names)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path,
                    env).stdout.strip())
    linked = link_dependencies(requires, tmp_path / "deps")
    assert "torch" in linked and "scikit-image" not in linked
    (site / "nafft_test_dependencies.pth").write_text(f"{tmp_path / 'deps'}\n")
    run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], tmp_path, env)
    where = run([str(python), "-c", "import nafft; print(nafft.__file__)"], tmp_path, env).stdout.strip()
    assert Path(where).is_relative_to(venv) and sysconfig.get_path("purelib") not in where

    empty = tmp_path / "empty"
    empty.mkdir()
    nafft = str(venv / "bin" / "nafft")
    data = ["--train-pairs", "4", "--test-pairs", "1", "--val-pairs", "1"]
    demo = run([nafft, "demo", "--iterations", "2", *data, "-o", "demo"], empty, env)
    assert "scikit-image is not installed" in demo.stderr and "chelsea.png" in demo.stderr
    assert "held-out images, 2 training iterations per model" in demo.stdout
    assert "the bundled default model nafft-photo" in demo.stdout
    assert (empty / "demo" / "nafft-photo" / "eval" / "summary.json").is_file()
    for name in ("summary.json", "report.md", "psnr_curve.png", "nafnet-small/checkpoints/last.safetensors"):
        assert (empty / "demo" / name).is_file(), name

    ablate = run([nafft, "ablate", "--configs", "nafnet-small", "nafft-v2-small", "--iterations", "2", "--seeds", "1",
                  *data, "-o", "ablation"], empty, env)
    assert "nafft-v2-small" in ablate.stdout
    for name in ("ablation.json", "ablation.md", "ablation_curves.png", "runs/nafft-v2-small/seed42/eval/summary.json"):
        assert (empty / "ablation" / name).is_file(), name

    # a user's photograph, no checkpoint argument: the model inside the wheel
    photo = next((empty / "demo").rglob("blur/*.png"))
    shutil.copy(photo, empty / "photo.png")
    deblur = run([nafft, "deblur", "photo.png", "-o", "out"], empty, env)
    assert deblur.stderr.splitlines()[0].startswith("no --checkpoint: using the bundled default model nafft-photo")
    assert (empty / "out" / "photo.png").is_file()
    # nothing written elsewhere
    assert sorted(p.name for p in empty.iterdir()) == ["ablation", "demo", "out", "photo.png"]
