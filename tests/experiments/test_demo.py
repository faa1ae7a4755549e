import csv
import json
import os

import pytest

from nafft.cli import main
from nafft.errors import UserError
from nafft.experiments.runs import find_config


@pytest.mark.slow
def test_demo_end_to_end_in_a_temp_folder(tmp_path, tiny_configs, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--out", "runs/demo", "--minutes", "0.05", "--models", *map(str, tiny_configs),
            "--train-pairs", "6", "--test-pairs", "1", "--val-pairs", "1"]
    assert main(args) == 0
    out = tmp_path / "runs" / "demo"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"input_psnr", "input_ssim", "models"}
    assert isinstance(summary["input_psnr"], float) and isinstance(summary["input_ssim"], float)
    assert set(summary["models"]) == {"base", "fft"}
    for name, entry in summary["models"].items():
        assert {k: type(entry[k]) for k in ("psnr", "ssim", "params", "macs", "ms_per_image", "checkpoint")} == {
            "psnr": float, "ssim": float, "params": int, "macs": int, "ms_per_image": float, "checkpoint": str}
        # paths relative to the working directory (the repository root under `make demo`)
        assert entry["checkpoint"] == f"runs/demo/{name}/checkpoints/last.safetensors"
        assert (tmp_path / entry["checkpoint"]).is_file()
        # the summary's numbers are the run's own evaluation
        own = json.loads((out / name / "eval" / "summary.json").read_text())
        assert entry["psnr"] == own["psnr"] and entry["ssim"] == own["ssim"]
        assert summary["input_psnr"] == own["input_psnr"]
        rows = list(csv.DictReader(open(out / name / "eval" / "per_image.csv")))
        assert entry["improved_images"] == sum(float(r["psnr"]) > float(r["input_psnr"]) for r in rows)
        assert (out / name / "config.yaml").is_file() and (out / name / "metrics.jsonl").is_file()
    # the minutes budget became one equal iteration count
    plan = json.loads((out / "plan.json").read_text())
    assert summary["models"]["base"]["iterations"] == summary["models"]["fft"]["iterations"] == plan["iterations"]
    assert set(plan["calibrated_step_seconds"]) == {str(p) for p in tiny_configs}
    assert (out / "psnr_curve.png").stat().st_size > 1000
    panels = sorted((out / "panels").glob("*.png"))
    assert panels
    report = (out / "report.md").read_text()
    assert f"{summary['models']['base']['psnr']:.2f}" in report and "psnr_curve.png" in report
    printed = capsys.readouterr().out
    assert f"{summary['models']['fft']['psnr']:.2f}" in printed

    # A re-run with the same options reuses the finished runs; other options are refused, nothing overwritten.
    mtime = os.path.getmtime(out / "base" / "checkpoints" / "last.safetensors")
    assert main(args) == 0
    assert os.path.getmtime(out / "base" / "checkpoints" / "last.safetensors") == mtime
    assert main([*args[:-2], "--val-pairs", "2"]) == 2
    assert "holds a demo made with other options" in capsys.readouterr().err


def test_find_config_by_name_and_path(tmp_path):
    assert find_config("nafnet-small").name == "nafnet-small.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("model: nafnet-small\n")
    assert find_config(own) == own
    with pytest.raises(UserError, match="did you mean 'nafnet-small'"):
        find_config("nafnet-smal")
