"""DDP: two gloo processes on the CPU under torchrun, through the real `nafft train` command."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from nafft.engine.config import build_config
from nafft.engine.trainer import train
from nafft.models import load_model

from .training_fixtures import make_pair_data, one_thread, tiny_mapping

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs `nafft train` in each process; on the way out every rank also saves the weights it ended with.
_DRIVER = textwrap.dedent(
    """
    import sys
    from safetensors.torch import save_file
    import nafft.engine.trainer as trainer_module
    from nafft.cli import main

    config, run, out = sys.argv[1:4]
    close = trainer_module.Trainer.close

    def close_and_dump(self):
        weights = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        save_file(weights, f"{out}/rank{self.dist.rank}_of_{self.dist.world_size}.safetensors")
        close(self)

    trainer_module.Trainer.close = close_and_dump
    sys.exit(main(["train", "-c", config, "--out", run, "--no-progress"]))
    """
)


def records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path_factory, tmp_path):
    pair_data = make_pair_data(tmp_path_factory)
    mapping = tiny_mapping(
        pair_data,
        data={"num_workers": 1},
        # accumulate 2: each rank runs 2 micro-batches of 1, all-reducing only after the second (no_sync)
        train={"iterations": 4, "checkpoint_every": 2, "val_every": 4, "log_every": 1, "ema": 0.9, "accumulate": 2},
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(mapping))
    (tmp_path / "dumps").mkdir()
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(config), str(tmp_path / "ddp"), str(tmp_path / "dumps")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished iteration 4" in done.stdout and done.stdout.count("finished iteration") == 1  # rank 0 only

    rank0 = load_file(str(tmp_path / "dumps" / "rank0_of_2.safetensors"))
    rank1 = load_file(str(tmp_path / "dumps" / "rank1_of_2.safetensors"))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept the replicas identical

    ddp = tmp_path / "ddp"
    saved = load_model(ddp / "checkpoints" / "last.safetensors").state_dict()
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    logs = records(ddp, "train")
    assert [r["iter"] for r in logs] == [1, 2, 3, 4]  # one writer, no duplicated lines
    assert sorted(p.name for p in (ddp / "checkpoints").glob("state_*")) == [
        "state_0000002.safetensors", "state_0000004.safetensors"]

    # One process on the same global batch of 4: the same samples, so the same loss and gradient (the ranks'
    # mean gradients are averaged), up to float summation order.
    with one_thread():
        train(build_config(mapping), tmp_path / "single")
    single = records(tmp_path / "single", "train")
    for a, b in zip(logs, single):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    val_ddp, val_single = records(ddp, "val")[0], records(tmp_path / "single", "val")[0]
    assert val_ddp["images"] == val_single["images"] == 2  # split over the ranks, summed back
    assert val_ddp["psnr"] == pytest.approx(val_single["psnr"], abs=1e-3)
    assert val_ddp["input_psnr"] == pytest.approx(val_single["input_psnr"], abs=1e-9)
    ref = load_model(tmp_path / "single" / "checkpoints" / "last.safetensors").state_dict()
    worst = max((ref[k] - rank0[k]).abs().max().item() for k in ref)
    assert worst < 1e-6, worst  # measured: 3e-8 after 4 AdamW steps
