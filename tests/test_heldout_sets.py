"""benchmarks/heldout_sets.py (the held-out suite) and the floors of benchmarks/default_model.py."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


heldout = _load("heldout_sets")
default_model = _load("default_model")


@pytest.mark.parametrize("kernel", ["tremor_kernel", "nafft_kernel"])
def test_kernels_are_normalised_and_as_long_as_asked(kernel):
    for seed, extent in ((0, 2.0), (1, 11.0), (2, 30.0)):
        k = getattr(heldout, kernel)(np.random.default_rng(seed), extent)
        assert k.sum() == pytest.approx(1.0) and k.min() >= 0 and k.shape[0] % 2 == 1
        ys, xs = np.nonzero(k > 1e-6)
        assert max(np.ptp(ys), np.ptp(xs)) == pytest.approx(extent, abs=2.0)


def test_sets_share_their_views_and_differ_only_in_the_condition(tmp_path):
    rng = np.random.default_rng(0)
    photo = (rng.random((330, 420, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "flower.png")
    out = tmp_path / "suite"
    counts = heldout.build([tmp_path / "flower.png"], out, views=2, seed=3,
                           sets=("sharp-low", "sharp-dof-real", "tremor-9-17", "shake-11-31", "shake-11-31-jpeg80"))
    assert counts == {"sharp-low": 2, "sharp-dof-real": 2, "tremor-9-17": 2, "shake-11-31": 2,
                      "shake-11-31-jpeg80": 2}

    def read(name, folder, file="flower_00.png"):
        return np.asarray(Image.open(out / name / folder / file)).astype(np.float64)

    assert read("sharp-low", "sharp").shape == (heldout.VIEW_H, heldout.VIEW_W, 3)
    np.testing.assert_array_equal(read("sharp-low", "sharp"), read("tremor-9-17", "sharp"))  # the same view
    noise = read("sharp-low", "blur") - read("sharp-low", "sharp")
    assert noise.std() == pytest.approx(1.5, abs=0.3)  # sigma 1.5/255 (clipped at 0 and 255 in places)
    extent = json.loads((out / "tremor-9-17" / "sets.json").read_text())["pairs"]["flower_00.png"]["extent_px"]
    assert 9 <= extent <= 17
    # the JPEG set is the shake set through JPEG 80: close to it, not equal
    shake, jpeg = read("shake-11-31", "blur"), read("shake-11-31-jpeg80", "blur")
    assert 0 < np.abs(shake - jpeg).mean() < 10  # (a random-texture photograph: JPEG errors are large)


def test_floor_verdicts_name_what_misses_and_by_how_much():
    def stats(gain, worst, improved, images=28):
        return {"gain": gain, "worst_gain": worst, "improved": improved, "images": images}

    verdicts = default_model.floor_verdicts({
        "sharp-low": stats(-0.05, -0.9, 10), "sharp-dof-real": stats(-0.2, -1.5, 5),
        "shake-11-31": stats(1.2, -0.1, 25), "tremor-9-17": stats(3.0, 1.0, 28)})
    assert verdicts == {"sharp-low": "holds", "sharp-dof-real": "MISSED: mean -0.20 < -0.1; worst -1.50 < -1.0",
                        "shake-11-31": "MISSED: improved 25/28 < 90%"}


def test_harm_shortfall_sums_what_the_do_no_harm_floors_miss():
    def stats(gain, worst):
        return {"gain": gain, "worst_gain": worst}

    results = {"sharp-low": stats(-0.3, -5.0), "sharp-dof-real": stats(1.0, 0.2), "sharp-dof-synth": stats(2.0, -2.5),
               "tremor-3-9": stats(0.35, -0.5), "shake-11-31": stats(-3.0, -9.0)}
    # 0.2 + 4.0 (sharp-low), 0 (dof-real), 1.5 (dof-synth), 0.15 (tremor's mean); shake is no do-no-harm floor
    assert default_model.harm_shortfall(results) == pytest.approx(5.85)
    assert default_model.harm_shortfall({k: v for k, v in results.items() if k != "tremor-3-9"}) is None


def test_views_near_full_resolution_when_scales_are_given():
    """`scales=(1, 1)`: the view is a crop of the photograph itself (no down-scaling); by default a large photograph
    is down-scaled (here at least 1200 / 288 / 3 = 1.4 times)."""
    y, x = np.mgrid[0:1200, 0:1200]
    coords = np.stack([x % 256, y % 256, (x // 256) * 16 + y // 256], axis=-1).astype(np.uint8)  # pixel -> place
    photo = Image.fromarray(coords)
    m = heldout.MARGIN
    inner = np.round(heldout.view(photo, np.random.default_rng(0), scales=(1.0, 1.0))[m:-m, m:-m] * 255).astype(int)
    x0 = int(inner[0, 0, 0]) + 256 * (int(inner[0, 0, 2]) // 16)
    y0 = int(inner[0, 0, 1]) + 256 * (int(inner[0, 0, 2]) % 16)
    np.testing.assert_array_equal(inner, coords[y0 : y0 + heldout.VIEW_H, x0 : x0 + heldout.VIEW_W])
    small = np.round(heldout.view(photo, np.random.default_rng(0))[m:-m, m:-m] * 255).astype(int)
    steps = np.diff(small[0, :100, 0]) % 256  # along a row, the x coordinate moves by the down-scaling
    assert np.mean(steps) > 1.3
