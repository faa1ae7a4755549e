import csv
import json
import os
from dataclasses import asdict

import pytest

from nafft.cli import main
from nafft.errors import UserError
from nafft.experiments.runs import find_config


@pytest.mark.slow
def test_demo_end_to_end_in_a_temp_folder(tmp_path, tiny_configs, monkeypatch, capsys):
    import nafft.weights
    from nafft.models import build_model, save_model

    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "weights"
    save_model(build_model({"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)}),
               weights / "nafft-photo.safetensors", {nafft.weights.CARD_KEY: json.dumps({"summary": "tiny"})})
    monkeypatch.setattr(nafft.weights, "_folder", lambda: weights)
    args = ["demo", "--out", "runs/demo", "--minutes", "0.05", "--models", *map(str, tiny_configs),
            "--train-pairs", "6", "--test-pairs", "1", "--val-pairs", "1"]
    assert main(args) == 0
    out = tmp_path / "runs" / "demo"
    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(summary["input_psnr"], float) and isinstance(summary["input_ssim"], float)
    assert [row["name"] for row in summary["rows"]] == ["base", "fft"] and summary["seeds"] == [42]
    for row in summary["rows"]:
        name, (run,) = row["name"], row["runs"]
        assert {k: type(row[k]) for k in ("params", "macs", "psnr_mean", "ms_per_image")} == {
            "params": int, "macs": int, "psnr_mean": float, "ms_per_image": float}
        # paths relative to the working directory (the repository root under `make demo`)
        assert run["checkpoint"] == f"runs/demo/{name}/checkpoints/last.safetensors"
        assert (tmp_path / run["checkpoint"]).is_file()
        # the summary's numbers are the run's own evaluation
        own = json.loads((out / name / "eval" / "summary.json").read_text())
        assert run["psnr"] == row["psnr_mean"] == own["psnr"] and run["ssim"] == own["ssim"]
        assert summary["input_psnr"] == own["input_psnr"]
        rows = list(csv.DictReader(open(out / name / "eval" / "per_image.csv")))
        assert run["improved_images"] == sum(float(r["psnr"]) > float(r["input_psnr"]) for r in rows)
        assert (out / name / "config.yaml").is_file() and (out / name / "metrics.jsonl").is_file()
    # the minutes budget became one equal iteration count
    plan = json.loads((out / "plan.json").read_text())
    assert [row["runs"][0]["iterations"] for row in summary["rows"]] == [plan["iterations"]] * 2
    assert set(plan["calibrated_step_seconds"]) == {"base", "fft"}
    assert (out / "psnr_curve.png").stat().st_size > 1000
    panels = sorted((out / "panels").glob("*.png"))
    assert panels
    report = (out / "report.md").read_text()
    assert f"{summary['rows'][0]['psnr_mean']:.2f}" in report and "psnr_curve.png" in report
    assert "panels/" in report and "(base/eval/report.md)" in report
    printed = capsys.readouterr().out
    assert f"{summary['rows'][1]['psnr_mean']:.2f}" in printed and "held-out images" in printed
    # the bundled default model, scored on the same held-out images, with its own panels and report section
    bundled = summary["bundled"]
    own = json.loads((out / "nafft-photo" / "eval" / "summary.json").read_text())
    assert bundled["psnr"] == own["psnr"] and bundled["images"] == own["images"] == summary["test_images"]
    assert sum(r["images"] for r in bundled["per_set"].values()) == bundled["images"]
    assert bundled["panels"] and all((out / p).is_file() for p in bundled["panels"])
    assert "## The bundled default model, `nafft-photo`" in report and bundled["panels"][0] in report
    assert f"the bundled default model nafft-photo (trained by nafft, not by this demo) on the same " \
           f"{bundled['images']} images: PSNR {bundled['psnr']:.2f} dB" in printed

    # A re-run with the same options reuses the finished runs; other data is refused, nothing overwritten.
    mtime = os.path.getmtime(out / "base" / "checkpoints" / "last.safetensors")
    assert main(args) == 0
    assert os.path.getmtime(out / "base" / "checkpoints" / "last.safetensors") == mtime
    assert main([*args[:-2], "--val-pairs", "2"]) == 2
    assert "holds runs made on other data" in capsys.readouterr().err


def test_a_demo_folder_of_the_previous_layout_keeps_its_data_and_iterations(tmp_path):
    from nafft.experiments.ablate import _budget, _read_plan
    from nafft.experiments.demo import demo_options
    from nafft.experiments.runs import SynthPlan

    opts = demo_options(out=tmp_path, minutes=2.0, plan=SynthPlan(val_pairs=2))
    old = {"requested": {"models": list(opts.configs), "minutes": 2.0, "iterations": None,
                         "data": asdict(SynthPlan(val_pairs=2)), "use_photos": True, "seed": 42},
           "iterations": 660, "calibrated_step_seconds": {"nafnet-small": 0.1}}
    (tmp_path / "plan.json").write_text(json.dumps(old))
    plan, _ = _read_plan(opts, tmp_path)
    assert _budget(opts, {}, plan) == (660, {"nafnet-small": 0.1})  # not calibrated again
    with pytest.raises(UserError, match=r"other data \(.*val_pairs\)"):
        _read_plan(demo_options(out=tmp_path, minutes=2.0), tmp_path)


def test_options_are_checked_before_any_data_is_made(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--models", "nafnet-small", "nafnet-smal", "-o", "demo"]) == 2
    assert "did you mean 'nafnet-small'" in capsys.readouterr().err
    assert main(["ablate", "--configs", "nafnet-small", "--set", "optim.lrr=1", "-o", "abl"]) == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists() and not (tmp_path / "abl").exists()


def test_without_scikit_image_the_demo_says_what_it_skips(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("nafft.data.synth.skimage_photo_paths", lambda: [])
    from nafft.experiments.runs import SynthPlan, make_datasets

    plan = SynthPlan(train_leaves=2, train_photos=2, val_pairs=1, test_leaves=1, test_photos=1, train_size=32,
                     test_size=32)
    with caplog.at_level("WARNING"):
        data = make_datasets(tmp_path, plan)
    assert "scikit-image is not installed" in caplog.text and "chelsea.png, coffee.png, rocket.jpg" in caplog.text
    assert not data.photos and [p.name for p in data.train] == ["train_leaves"]
    assert [p.name for p in data.test] == ["test_leaves"]


def test_training_time_sums_the_segments_of_a_resumed_run(tmp_path, tiny_configs, monkeypatch):
    """runs.py recorded only the last segment's time after a resume, and about 0 s for a finished run."""
    from nafft.engine.callbacks import Callback
    from nafft.experiments import runs
    from nafft.experiments.runs import (
        SynthPlan,
        make_datasets,
        read_train_seconds,
        recipe_config,
        train_and_evaluate,
    )

    data = make_datasets(tmp_path / "data", SynthPlan(train_leaves=4, train_photos=0, val_pairs=1, test_leaves=1,
                                                      test_photos=0, train_size=64, test_size=64))
    config = recipe_config(tiny_configs[0], data.train, data.val, 4, 42, checkpoints=2)
    run_dir = tmp_path / "run"

    class Stop(Callback):
        def on_step(self, iteration, stats):
            if iteration == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate("base", config, run_dir, data.test, callback=Stop())
    first = json.loads((run_dir / "train_seconds.json").read_text())
    assert first["iteration"] == 2 and first["seconds"] > 0
    result = train_and_evaluate("base", config, run_dir, data.test)
    assert result.train_seconds > first["seconds"]
    # a finished run whose evaluation is missing is evaluated, not trained again: its time stays
    (run_dir / "eval" / "summary.json").unlink()
    monkeypatch.setattr("nafft.engine.trainer.train", lambda *a, **k: pytest.fail("trained a finished run"))
    assert runs.train_and_evaluate("base", config, run_dir, data.test).train_seconds == result.train_seconds
    assert read_train_seconds(run_dir / "train_seconds.json") == result.train_seconds


def test_find_config_by_name_and_path(tmp_path):
    assert find_config("nafnet-small").name == "nafnet-small.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("model: nafnet-small\n")
    assert find_config(own) == own
    with pytest.raises(UserError, match="did you mean 'nafnet-small'"):
        find_config("nafnet-smal")
