import csv
import json
import math

import numpy as np
import pytest
import torch

from nafft.cli import main
from nafft.data.io import decode_image, write_image
from nafft.engine.evaluate import CSV_COLUMNS, METRIC_KEYS, evaluate_model, summarize
from nafft.errors import UserError
from nafft.inference import OpenedModel
from nafft.metrics import psnr, ssim, ssim3d
from tests.inference.conftest import save_tiny_checkpoint


def write_pairs(root, count: int, height: int, width: int, seed: int):
    """A flat pair folder: smooth random colour images (sharp) and blurred copies (blur), 8-bit PNG."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.random((height // 4 + 2, width // 4 + 2, 3))
        sharp = torch.nn.functional.interpolate(
            torch.from_numpy(coarse).permute(2, 0, 1)[None], size=(height, width), mode="bilinear"
        )
        blur = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
        write_image(root / "sharp" / f"{i:03d}.png", sharp[0].permute(1, 2, 0).numpy())
        write_image(root / "blur" / f"{i:03d}.png", blur[0].permute(1, 2, 0).numpy())
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    data = write_pairs(base / "data", 3, 30, 37, seed=3)
    ckpt = save_tiny_checkpoint(base / "tiny.safetensors", patch_size=16, attention="eca")
    return data, ckpt


def test_eval_end_to_end(setup, tmp_path, capsys):
    data, ckpt = setup
    out = tmp_path / "out"
    code = main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--save-images",
                 "--panels", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "the 3 images will take about" in err  # the time estimate after the first image
    assert "\r" not in err  # stderr is not a terminal: no progress bar in the log
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert list(CSV_COLUMNS[:7]) == [
        "name",
        "psnr",
        "ssim",
        "ssim3d",
        "input_psnr",
        "input_ssim",
        "input_ssim3d",
    ]
    assert [r["name"] for r in rows] == ["000.png", "001.png", "002.png"]
    for row in rows:
        saved, _, depth = decode_image(out / "images" / row["name"])
        sharp = decode_image(data / "sharp" / row["name"])[0]
        blur = decode_image(data / "blur" / row["name"])[0]
        assert depth == 8 and saved.shape == (30, 37, 3)
        # the CSV holds exactly the metrics of the saved 8-bit prediction
        assert float(row["psnr"]) == psnr(saved, sharp)
        assert float(row["ssim"]) == ssim(saved, sharp)
        assert float(row["ssim3d"]) == ssim3d(saved, sharp)
        assert float(row["input_psnr"]) == psnr(blur, sharp)
        assert float(row["input_ssim"]) == ssim(blur, sharp)
        assert float(row["input_ssim3d"]) == ssim3d(blur, sharp)
        assert float(row["psnr"]) != float(row["input_psnr"])
    summary = json.loads((out / "summary.json").read_text())
    for key in METRIC_KEYS:
        assert summary[key] == pytest.approx(np.mean([float(r[key]) for r in rows]), abs=1e-12)
    assert summary["images"] == 3 and summary["seconds_per_image"] > 0 and summary["total_seconds"] > 0
    assert summary["settings"]["tlc"] is True and summary["settings"]["tlc_train_size"] == 16
    assert sorted(p.name for p in (out / "panels").iterdir()) == [
        "000_compare.png", "000_fft.png", "002_compare.png", "002_fft.png",
    ]  # fmt: skip
    panel = decode_image(out / "panels" / "000_compare.png")[0]
    assert panel.shape[1] > 4 * 37  # four cells side by side
    report = (out / "report.md").read_text()
    assert (
        "| prediction |" in report
        and f"{summary['psnr']:.2f}" in report
        and "panels/000_compare.png" in report
    )


def test_no_tlc_and_self_ensemble_change_the_result(setup, tmp_path):
    data, ckpt = setup
    results = {}
    for name, extra in {"tlc": [], "no_tlc": ["--no-tlc"], "ens": ["--self-ensemble"]}.items():
        assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / name),
                     "--panels", "0", *extra]) == 0  # fmt: skip
        results[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert results["no_tlc"]["settings"]["tlc"] is False
    assert results["tlc"]["psnr"] != results["no_tlc"]["psnr"]
    assert results["tlc"]["psnr"] != results["ens"]["psnr"]
    assert results["tlc"]["input_psnr"] == results["no_tlc"]["input_psnr"] == results["ens"]["input_psnr"]


def test_bad_pair_is_reported_and_the_rest_evaluated(setup, tmp_path, capsys):
    data = write_pairs(tmp_path / "data", 3, 24, 24, seed=4)
    (data / "blur" / "001.png").write_bytes(b"broken")  # found bad while pairing (header)
    truncated = (data / "blur" / "002.png").read_bytes()[:120]  # header fine, pixels cut: found bad when read
    (data / "blur" / "002.png").write_bytes(truncated)
    code = main(["eval", "--checkpoint", str(setup[1]), "--data", str(data), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "001.png" in err and "002.png" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 1 and len(summary["problems"]) == 2
    assert "001.png" in summary["problems"][0] and "002.png" in summary["problems"][1]
    assert "## Problems" in (tmp_path / "out" / "report.md").read_text()


def test_identity_predictor_and_identical_pairs(tmp_path):
    data = write_pairs(tmp_path / "data", 2, 20, 22, seed=5)
    sharp0 = decode_image(data / "sharp" / "000.png")[0]
    write_image(data / "blur" / "000.png", sharp0)  # an already-sharp input: PSNR = inf
    identity = OpenedModel.from_network(torch.nn.Identity(), device="cpu")
    result = evaluate_model(identity, data, tmp_path / "out", tile=0, panels=0)
    first, second = result.records
    assert first.metrics["psnr"] == first.metrics["input_psnr"] == math.inf
    assert second.metrics["psnr"] == second.metrics["input_psnr"] < math.inf
    assert result.summary["psnr"] == second.metrics["psnr"] and result.summary["psnr_identical"] == 1
    assert "inf" in (tmp_path / "out" / "per_image.csv").read_text()
    assert summarize([first])["psnr"] is None  # the mean of no finite value


def test_tiled_eval_equals_whole_for_a_local_network(tmp_path):
    from tests.inference.conftest import LocalNet, on_cpu

    data = write_pairs(tmp_path / "data", 1, 150, 170, seed=6)
    torch.manual_seed(1)
    net = on_cpu(LocalNet().eval())
    whole = evaluate_model(net, data, tmp_path / "a", tile=0, panels=0)
    tiled = evaluate_model(net, data, tmp_path / "b", tile=96, overlap=32, panels=0)
    # blending rounds differently by ~1e-7, which can flip the 8-bit rounding of a pixel or two
    assert tiled.records[0].metrics == pytest.approx(whole.records[0].metrics, rel=1e-6)
    assert (whole.records[0].tiles, tiled.records[0].tiles) == (0, 6)
    assert "tiles" in (tmp_path / "b" / "per_image.csv").read_text().splitlines()[0]


def test_several_folders_are_named_apart_and_recorded(tmp_path):
    """Two pair folders with the same file names and even the same folder name: every pair keeps its own name."""
    first = write_pairs(tmp_path / "a" / "test", 2, 20, 22, seed=7)
    second = write_pairs(tmp_path / "b" / "test", 1, 20, 22, seed=8)
    other = write_pairs(tmp_path / "photos", 1, 20, 22, seed=9)
    identity = OpenedModel.from_network(torch.nn.Identity(), device="cpu", name="identity")
    result = evaluate_model(identity, [first, second, other], tmp_path / "out", tile=0, panels=0,
                            settings={"note": "three folders"})
    assert [r.name for r in result.records] == ["a/test/000.png", "a/test/001.png", "b/test/000.png",
                                                "photos/000.png"]
    settings = result.summary["settings"]
    assert settings["data"] == [str(first), str(second), str(other)] and settings["checkpoint"] == "identity"
    assert settings["tile"] == "never" and settings["note"] == "three folders" and settings["tlc"] is False
    # the prediction is the input: output and input metrics agree image by image
    assert all(r.metrics["psnr"] == r.metrics["input_psnr"] for r in result.records)
    twice = evaluate_model(identity, [first, first], tmp_path / "twice", tile=0, panels=0)
    assert [r.name for r in twice.records] == ["test/000.png", "test/001.png", "test~2/000.png", "test~2/001.png"]
    empty = tmp_path / "empty"
    (empty / "blur").mkdir(parents=True)
    (empty / "sharp").mkdir()
    with pytest.raises(UserError, match="empty: no readable image pairs"):
        evaluate_model(identity, empty, tmp_path / "none", tile=0)
