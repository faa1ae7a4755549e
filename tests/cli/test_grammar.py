"""One grammar across the commands: -o/--out, --checkpoint, recipe names, --threads, ranges checked up front."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nafft.cli import build_parser, main
from nafft.models import ModelConfig, build_model, save_model
from tests.engine.training_fixtures import write_pairs

COMPUTING = {
    "train": ["-c", "nafnet-small", "-o", "run"],
    "eval": ["--data", "d", "-o", "e"],
    "deblur": ["x.png", "-o", "d"],
    "export": ["--checkpoint", "c.safetensors", "-o", "m.onnx"],
    "profile": ["nafnet-small"],
    "demo": [],
    "ablate": [],
}


@pytest.mark.parametrize("command", sorted(COMPUTING))
def test_every_computing_command_takes_threads_and_checks_it(command, capsys):
    parser = build_parser()
    args = parser.parse_args([command, *COMPUTING[command], "--threads", "3"])
    assert args.threads == 3
    with pytest.raises(SystemExit):
        parser.parse_args([command, *COMPUTING[command], "--threads", "0"])
    assert "argument --threads: expected an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval", "deblur", "export", "prepare", "demo", "ablate"])
def test_every_command_with_outputs_takes_o(command):
    args = {"prepare": ["--input", "i"], "train": ["-c", "x"], "eval": ["--data", "d"], "deblur": ["x.png"],
            "export": ["c.safetensors"], "demo": [], "ablate": []}[command]
    assert str(build_parser().parse_args([command, *args, "-o", "somewhere"]).out) == "somewhere"


def _tiny(tmp_path, conv="conv"):
    cfg = ModelConfig(width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,), conv=conv)
    return save_model(build_model(cfg), tmp_path / f"tiny_{conv}.safetensors")


def test_eval_takes_o_and_refuses_a_negative_limit(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs", 2, 24, 20, 0)
    ckpt = _tiny(tmp_path)
    assert main(["eval", "--data", str(data), "-o", str(tmp_path / "ev"), "--checkpoint", str(ckpt)]) == 0
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["images"] == 2
    with pytest.raises(SystemExit):
        main(["eval", "--data", str(data), "-o", str(tmp_path / "ev2"), "--checkpoint", str(ckpt), "--limit", "-1"])
    assert "argument --limit: expected an integer >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "ev2").exists()


def test_export_takes_checkpoint_option_positional_and_presets(tmp_path, capsys):
    plain, doconv = _tiny(tmp_path), _tiny(tmp_path, "doconv")
    assert main(["export", "--checkpoint", str(plain), "-o", str(tmp_path / "a.safetensors")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'a.safetensors'} (safetensors, ") and "DO-Conv" not in out
    assert main(["export", str(doconv), "-o", str(tmp_path / "b.safetensors")]) == 0  # the older spelling
    assert "MB, DO-Conv folded)" in capsys.readouterr().out
    assert main(["export", "--checkpoint", "nafnet-small", "-o", str(tmp_path / "p.safetensors")]) == 0
    assert "preset nafnet-small with untrained weights" in capsys.readouterr().out
    assert main(["export", str(plain), "--checkpoint", str(doconv), "-o", str(tmp_path / "c.safetensors")]) == 2
    assert "two checkpoints given" in capsys.readouterr().err
    assert "--checkpoint CKPT (the older spelling, kept for scripts)" in " ".join(
        build_parser()._subparsers._group_actions[0].choices["export"].format_help().split())


def test_a_training_state_is_named_as_such(tmp_path, capsys):
    from nafft.engine.run_checkpoints import save_state

    state = save_state(tmp_path / "state_0000010.safetensors", {"iteration": 10, "model": {"w": np.ones(2)}})
    assert main(["export", "--checkpoint", str(state), "-o", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"nafft: error: {state}: this is a training state (what `nafft train --resume` reads), not model "
                   "weights; use the run's checkpoints/last.safetensors, best.safetensors or iter_*.safetensors")


def test_profile_json_without_timing_is_valid_json_and_takes_checkpoint(tmp_path, capsys):
    ckpt = _tiny(tmp_path)
    assert main(["profile", "nafnet-small", "--checkpoint", str(ckpt), "--size", "32", "--runs", "0",
                 "--format", "json"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert [r["name"] for r in report["results"]] == ["nafnet-small", "tiny_conv"]
    assert report["results"][0]["latency_ms"] is None and "NaN" not in text


def test_train_takes_a_recipe_name_and_fits_its_warmup_to_a_short_run(tmp_path, capsys, caplog):
    data = write_pairs(tmp_path / "pairs", 4, 40, 40, 0)
    run = tmp_path / "run"
    with caplog.at_level("INFO"):
        code = main(["train", "-c", "nafnet-small", "-o", str(run), "--no-progress", "--threads", "1", "--set",
                     "train.iterations=3", f"data.train={data}", "data.val=null", "data.patch_size=32",
                     "data.batch_size=2", "data.num_workers=0", "train.tensorboard=false"])
    assert code == 0
    saved = (run / "config.yaml").read_text()
    assert "warmup_iters: 0" in saved and "iterations: 3" in saved
    assert "its warm-up of 50 iterations does not fit train.iterations=3: warming up for 0" in caplog.text
    # a warm-up set explicitly is still checked
    code = main(["train", "-c", "nafnet-small", "-o", str(tmp_path / "run2"), "--set", "train.iterations=3",
                 "schedule.warmup_iters=5", f"data.train={data}"])
    assert code == 2
    assert "schedule.warmup_iters (5) must be below train.iterations (3)" in capsys.readouterr().err


def test_train_from_python_shows_progress_without_logging_set_up(tmp_path):
    """`train()` called from a script that configured no logging printed nothing for minutes."""
    data = write_pairs(tmp_path / "pairs", 4, 40, 40, 0)
    script = (
        "import sys\n"
        "from nafft.engine.config import load_config\n"
        "from nafft.engine.trainer import train\n"
        f"cfg = load_config('configs/nafnet-small.yaml', ['train.iterations=2', 'data.train={data}', "
        f"'data.val={data}', 'data.patch_size=32', 'data.batch_size=2', 'data.num_workers=0', "
        "'train.tensorboard=false', 'train.log_every=1'])\n"
        f"train(cfg, '{tmp_path / 'run'}')\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=repo,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert any("iteration 1: loss" in line for line in lines)
    assert any("validating (" in line for line in lines)
    assert any("validation PSNR" in line for line in lines)
    assert any("finished at iteration 2" in line for line in lines)

