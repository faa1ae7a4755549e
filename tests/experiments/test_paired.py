"""The paired design of `nafft ablate`: every run of a seed sees the same batches and starts from the reference's
initialisation with that seed wherever the architectures share tensors."""

import json

import pytest
import torch
import yaml

from nafft.engine.trainer import Trainer
from nafft.experiments.ablate import AblationOptions, run_ablation
from nafft.experiments.runs import SynthPlan, recipe_config, shared_init_state
from nafft.models import build_model
from nafft.models.checkpoint import read_state_dict

from .conftest import tiny_config

TINY_PLAN = SynthPlan(train_leaves=6, train_photos=0, val_pairs=1, test_leaves=1, test_photos=0,
                      train_size=64, test_size=64)


@pytest.fixture
def spy_steps(monkeypatch):
    """Every training step's batch and each run's weights before its first update, by run folder."""
    seen: dict[str, dict] = {}
    step = Trainer.step

    def spy(self, blur, sharp):
        run = seen.setdefault(str(self.run_dir), {"batches": [], "start": None})
        if run["start"] is None:
            run["start"] = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        run["batches"].append((blur.detach().clone(), sharp.detach().clone()))
        return step(self, blur, sharp)

    monkeypatch.setattr(Trainer, "step", spy)
    return seen


def test_two_variants_of_one_seed_receive_identical_batches_and_a_shared_start(tmp_path, spy_steps):
    folder = tmp_path / "configs"
    folder.mkdir()
    base = tiny_config(folder, "base", "nafnet-small")  # SCA, plain conv, plain skips
    variant = tiny_config(folder, "dc", "nafft-v4-small")  # ECA, DO-Conv, FFT skips, L1 loss
    out = tmp_path / "abl"
    summary = run_ablation(AblationOptions(configs=(str(base), str(variant)), iterations=3, seeds=2, out=out,
                                           plan=TINY_PLAN, checkpoints=1, eval_panels=0, comparison_panels=0))
    runs = {(name, seed): spy_steps[str(out / "runs" / name / f"seed{seed}")] for name in ("base", "dc")
            for seed in (42, 43)}
    for seed in (42, 43):
        ref, var = runs["base", seed], runs["dc", seed]
        assert len(ref["batches"]) == len(var["batches"]) == 3
        for (blur_a, sharp_a), (blur_b, sharp_b) in zip(ref["batches"], var["batches"]):
            assert torch.equal(blur_a, blur_b) and torch.equal(sharp_a, sharp_b)
    # another seed, other batches and another start
    assert not torch.equal(runs["base", 42]["batches"][0][0], runs["base", 43]["batches"][0][0])
    assert not torch.equal(runs["base", 42]["start"]["intro.weight"], runs["base", 43]["start"]["intro.weight"])

    for seed in (42, 43):
        ref, var = runs["base", seed]["start"], runs["dc", seed]["start"]
        # the reference starts where it would without the shared file: its own seeded initialisation
        torch.manual_seed(seed)
        own = build_model(recipe_config(base, (tmp_path,), None, 3, seed).model_config()).state_dict()
        assert own.keys() == ref.keys() and all(torch.equal(own[k], ref[k]) for k in own)
        init, _ = read_state_dict(out / "init" / f"base-seed{seed}.safetensors")
        assert all(torch.equal(init[k], ref[k]) for k in ref)
        # the variant takes every tensor it shares with the reference...
        shared = [k for k in var if k in ref and var[k].shape == ref[k].shape]
        assert len(shared) > 20 and all(torch.equal(var[k], ref[k]) for k in shared)
        # ...its DO-Conv kernels start as the reference's 3x3 kernels (D = 0)...
        w = var["encoders.0.0.conv2.W"]
        assert torch.equal(w.reshape(ref["encoders.0.0.conv2.weight"].shape), ref["encoders.0.0.conv2.weight"])
        assert not var["encoders.0.0.conv2.D"].any()
        # ...and the rest (ECA, FFT skips) is its own seeded initialisation
        assert "encoders.0.0.eca.conv.weight" in var and "skips.0.conv1.weight" in var
    assert not torch.equal(runs["dc", 42]["start"]["skips.0.conv1.weight"],
                           runs["dc", 43]["start"]["skips.0.conv1.weight"])

    dc = summary["rows"][1]
    assert summary["paired"] and summary["reference"] == "base"
    assert 0.3 < dc["shared_init"] < 1 and summary["rows"][0]["shared_init"] == 1.0
    ref_psnr = {run["seed"]: run["psnr"] for run in summary["rows"][0]["runs"]}
    assert dc["paired_psnr"]["differences"] == [run["psnr"] - ref_psnr[run["seed"]] for run in dc["runs"]]
    config = yaml.safe_load((out / "runs" / "dc" / "seed43" / "config.yaml").read_text())
    assert config["model"]["init"] == str(out / "init" / "base-seed43.safetensors")


def test_a_do_conv_reference_gives_plain_variants_its_kernels():
    from nafft.engine.config import build_config

    config = build_config({"model": {"preset": "nafft-v4-small", "width": 8, "enc_blocks": [1], "dec_blocks": [1]}})
    state = shared_init_state(config, 7)
    w = state["encoders.0.0.conv2.W"]  # (out, in/groups, 9)
    assert torch.equal(state["encoders.0.0.conv2.weight"], w.reshape(w.shape[0], w.shape[1], 3, 3))
    plain = build_model({"preset": "nafnet-small", "width": 8, "enc_blocks": [1], "dec_blocks": [1]})
    own = plain.state_dict()
    plain.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)
    assert torch.equal(plain.encoders[0][0].conv2.weight, state["encoders.0.0.conv2.weight"])


@pytest.mark.slow
def test_the_gpu_ablation_command_runs_on_a_cpu_at_a_tiny_budget(tmp_path, monkeypatch):
    """`make ablation-gpu`'s options, with the models and data shrunk to seconds: the recipes resolve, the time
    budget is calibrated and shared, every run trains and the table is written."""
    import re
    import shlex
    from pathlib import Path

    from nafft.cli import main

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    options = shlex.split(re.search(r"^GPU_ABLATION := (.*?)(?<!\\)$", makefile, re.M | re.S)[1].replace("\\\n", " "))
    monkeypatch.chdir(tmp_path)
    shrink = ["--minutes", "0.05", "--train-pairs", "4", "--train-size", "64", "--test-pairs", "1", "--val-pairs", "1",
              "--no-photos", "--set", "model.width=8", "model.enc_blocks=[1,1]", "model.dec_blocks=[1,1]",
              "data.patch_size=32", "data.batch_size=2", "data.num_workers=0", "-o", "gpu"]
    assert main(["ablate", *options, *shrink]) == 0
    summary = json.loads((tmp_path / "gpu" / "ablation.json").read_text())
    assert [row["name"] for row in summary["rows"]] == options[1:options.index("--minutes")]
    assert summary["seeds"] == [42, 43, 44] and summary["iterations"] >= 20
    assert all(row["paired_psnr"]["n"] == 3 for row in summary["rows"][1:])
    assert "train.amp=bf16" in summary["overrides"] and (tmp_path / "gpu" / "ablation_curves.png").is_file()
