import json

import pytest

from nafft.cli import main
from nafft.experiments import runs
from nafft.experiments.ablate import AblationOptions, run_ablation
from nafft.experiments.runs import SynthPlan

TINY_PLAN = SynthPlan(train_leaves=6, train_photos=0, val_pairs=1, test_leaves=2, test_photos=0,
                      train_size=64, test_size=64)


@pytest.mark.slow
def test_ablation_table_equals_the_runs_and_finished_runs_are_skipped(tmp_path, tiny_configs, monkeypatch):
    opts = AblationOptions(configs=tuple(map(str, tiny_configs)), iterations=6, seeds=2, out=tmp_path / "abl",
                           plan=TINY_PLAN)
    table = run_ablation(opts)
    out = tmp_path / "abl"
    rows = {row["name"]: row for row in table["rows"]}
    assert list(rows) == ["base", "fft"]
    for name, row in rows.items():
        own = [json.loads((out / "runs" / name / f"seed{s}" / "eval" / "summary.json").read_text())
               for s in (42, 43)]
        # per-seed results in seed order, so that two configs pair up by seed
        assert [run["seed"] for run in row["runs"]] == table["seeds"] == [42, 43]
        assert [run["psnr"] for run in row["runs"]] == [o["psnr"] for o in own]
        assert [run["ssim"] for run in row["runs"]] == [o["ssim"] for o in own]
        assert row["psnr_mean"] == pytest.approx(sum(o["psnr"] for o in own) / 2)
        assert [run["run_dir"] for run in row["runs"]] == [str(out / "runs" / name / f"seed{s}") for s in (42, 43)]
        assert all(run["train_seconds"] > 0 for run in row["runs"])
    assert rows["base"]["delta_psnr"] == 0
    assert rows["fft"]["delta_psnr"] == pytest.approx(rows["fft"]["psnr_mean"] - rows["base"]["psnr_mean"])
    assert rows["fft"]["params"] > rows["base"]["params"]  # the FFT skip blocks add weights
    assert "loss psnr + 0.05 fft" in rows["fft"]["description"]
    md = (out / "ablation.md").read_text()
    for row in rows.values():
        assert f"{row['psnr_mean']:.2f} +- {row['psnr_std']:.2f}" in md
    assert json.loads((out / "ablation.json").read_text()) == table
    assert (out / "ablation_curves.png").stat().st_size > 1000
    assert "runs/base/seed43/eval/report.md" in md and (out / "plan.json").is_file()

    # Re-run: nothing is trained or evaluated again, and the table is the same.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr("nafft.engine.trainer.train", refuse)
    monkeypatch.setattr(runs, "evaluate_run", refuse)
    assert run_ablation(opts) == table


def test_ablate_cli_needs_train_and_test_together(tmp_path, capsys):
    assert main(["ablate", "--train", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "--train and --test go together" in capsys.readouterr().err


def test_a_different_budget_in_a_finished_folder_is_refused_unless_extended(tmp_path, tiny_configs, caplog):
    """`ablate --iterations 25` on a finished 20-iteration folder resumed the runs past their finished cosine schedule
    and labelled the table "25 iterations per run"; now it is refused before any training, or extended on request
    and labelled as such."""
    from nafft.errors import UserError

    base = dict(configs=(str(tiny_configs[0]),), seeds=1, out=tmp_path / "abl", plan=TINY_PLAN)
    run_ablation(AblationOptions(iterations=3, **base))
    run_dir = tmp_path / "abl" / "runs" / "base" / "seed42"
    state = sorted((run_dir / "checkpoints").glob("state_*"))
    with pytest.raises(UserError, match=r"runs there were trained for 3 iterations \(base seed 42\); --iterations 5 "
                                        r"would resume them past their finished learning-rate schedule\. Pass "
                                        r"--extend"):
        run_ablation(AblationOptions(iterations=5, **base))
    with pytest.raises(UserError, match=r"trained for 3 iterations \(base seed 42\); they cannot be cut to "
                                        r"--iterations 2"):
        run_ablation(AblationOptions(iterations=2, **base))
    with pytest.raises(UserError, match=r"made with other settings \(base seed 42: loss.l1\)"):
        run_ablation(AblationOptions(iterations=3, overrides=("loss.l1=1",), **base))
    assert sorted((run_dir / "checkpoints").glob("state_*")) == state  # nothing was trained by the refusals

    table = run_ablation(AblationOptions(iterations=5, extend=True, **base))
    assert table["iterations"] == 5 and table["extended_from"] == {"base seed 42": 3}
    assert "**Extended runs:** 1 run(s) were trained for 3 iterations and then continued to 5" in (
        tmp_path / "abl" / "ablation.md").read_text()
    assert json.loads((run_dir / "eval" / "summary.json").read_text())["iteration"] == 5
    # a later run with the new budget needs no --extend, and the table still says the runs were extended
    assert run_ablation(AblationOptions(iterations=5, **base))["extended_from"] == {"base seed 42": 3}


def test_ablate_cli_has_extend_and_checks_ranges(tmp_path, capsys):
    from nafft.cli import build_parser

    assert build_parser().parse_args(["ablate", "--extend"]).extend
    with pytest.raises(SystemExit):
        main(["ablate", "--iterations", "0", "--out", str(tmp_path / "x")])
    assert "argument --iterations: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_nafft_ablate_end_to_end_reports_paired_differences_with_intervals(tmp_path, tiny_configs, monkeypatch,
                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    args = ["ablate", "--configs", *map(str, tiny_configs), "--iterations", "2", "--seeds", "3", "--train-pairs", "4",
            "--test-pairs", "1", "--val-pairs", "1", "--no-photos", "-o", "abl"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    base, fft = summary["rows"]
    assert summary["seeds"] == [42, 43, 44] and summary["paired"] and summary["reference"] == "base"
    assert base["paired_psnr"] is None
    paired = fft["paired_psnr"]
    diffs = [f["psnr"] - b["psnr"] for f, b in zip(fft["runs"], base["runs"])]
    assert paired["seeds"] == [42, 43, 44] and paired["differences"] == pytest.approx(diffs)
    half = 4.30265272975 * paired["std"] / 3 ** 0.5
    assert (paired["low"], paired["high"]) == (pytest.approx(paired["mean"] - half), pytest.approx(paired["mean"] + half))
    assert paired["resolved"] == (paired["low"] > 0 or paired["high"] < 0)
    assert fft["delta_psnr"] == pytest.approx(paired["mean"])
    # cost per variant: parameters, MACs, CPU seconds per step (measured once per folder), CPU hours of the job
    for row in (base, fft):
        assert row["params"] > 0 and row["macs"] > 0 and row["step_cpu_seconds"] > 0
        assert all(run["train_cpu_seconds"] > 0 and run["eval_cpu_seconds"] > 0 for run in row["runs"])
    assert summary["cpu_hours"] == pytest.approx(sum(
        run["train_cpu_seconds"] + run["eval_cpu_seconds"] for row in (base, fft) for run in row["runs"]) / 3600)
    assert json.loads((tmp_path / "abl" / "step_cost.json").read_text()).keys() == {"base", "fft"}
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert f"[{paired['low']:+.3f}, {paired['high']:+.3f}]" in md and "| 95% interval | resolved |" in md
    assert "nafft ablate --configs" in md and "--seeds 3" in md  # the command, for the record
    assert "Per-seed PSNR differences to `base`" in md and f"{diffs[2]:+.3f}" in md
    pair = summary["pairwise_psnr"]
    assert [(p["a"], p["b"]) for p in pair] == [("base", "fft")] and pair[0]["mean"] == pytest.approx(-paired["mean"])
    assert "(ablation_differences.png)" in md and (tmp_path / "abl" / "ablation_differences.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "95% interval" in printed and f"{paired['mean']:+.3f}" in printed


def test_a_time_budget_is_shared_by_every_run_of_the_job(tmp_path, monkeypatch):
    from nafft.experiments import ablate

    monkeypatch.setattr(ablate, "calibrate_step_seconds", lambda config: 0.5)
    opts = AblationOptions(configs=("nafnet-small", "nafft-v1-small"), iterations=None, minutes=10, seeds=3,
                           out=tmp_path)
    paths = {name: runs.find_config(name) for name in opts.configs}
    # 10 minutes x 0.8 for the steps / (3 seeds x 2 configs x 0.5 s) = 160 iterations
    assert ablate._budget(opts, paths, None)[0] == 160


def test_a_setting_added_to_the_config_later_at_its_default_does_not_orphan_finished_runs(tmp_path, tiny_configs):
    """A run folder made before a training setting existed has no such key in its config.yaml; at its default the
    setting is what the run did, so the folder is still accepted (anything else is refused)."""
    import yaml

    from nafft.errors import UserError
    from nafft.experiments.ablate import check_existing_runs
    from nafft.experiments.runs import recipe_config
    from nafft.typed_config import to_dict

    config = recipe_config(tiny_configs[0], (tmp_path,), None, 10, 42)
    saved = to_dict(config)
    del saved["train"]["val_panels"]  # as if val_panels had been added after the run
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert check_existing_runs([("base", 42, config, tmp_path / "run")], 10, False, tmp_path) == {}
    changed = recipe_config(tiny_configs[0], (tmp_path,), None, 10, 42, overrides=("train.val_panels=5",))
    with pytest.raises(UserError, match=r"other settings \(base seed 42: train.val_panels\)"):
        check_existing_runs([("base", 42, changed, tmp_path / "run")], 10, False, tmp_path)
