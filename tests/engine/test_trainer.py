"""The training loop end to end on a tiny model and tiny pair folders."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from nafft.cli import main
from nafft.engine.config import LoopConfig, build_config, load_config
from nafft.engine.run_checkpoints import latest_state, load_state
from nafft.engine.trainer import CONFIG_KEY, Callback, Trainer, TrainingDiverged, train
from nafft.errors import CheckpointError, ConfigError, UserError
from nafft.models import load_model, read_metadata

from .training_fixtures import make_pair_data, one_thread, tiny_config, tiny_mapping


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return make_pair_data(tmp_path_factory)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield

SRC = Path(__file__).resolve().parents[2] / "src"


def records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def flat_weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_short_run_learns_and_writes_loadable_checkpoints(pair_data, tmp_path):
    cfg = tiny_config(
        pair_data,
        optim={"lr": 2e-3},
        train={"iterations": 40, "checkpoint_every": 20, "val_every": 20, "log_every": 5, "ema": 0.9},
    )
    run = tmp_path / "run"
    summary = train(cfg, run)
    assert summary["iteration"] == 40 and summary["nonfinite_total"] == 0

    logs = records(run, "train")
    assert [r["iter"] for r in logs] == list(range(5, 45, 5))
    assert all(r["loss"] == pytest.approx(r["loss_psnr"]) for r in logs)  # one term of weight 1
    first, last = logs[0]["loss"], sum(r["loss"] for r in logs[-2:]) / 2
    assert last < first - 1.0, (first, last)  # the PSNR loss is minus the PSNR: > 1 dB better on the crops
    assert logs[0]["lr"] > logs[-1]["lr"] == pytest.approx(1e-6)
    vals = records(run, "val")
    assert [v["iter"] for v in vals] == [20, 40] and vals[0]["images"] == 2
    assert all({"psnr", "ssim", "ema_psnr", "ema_ssim", "input_psnr"} <= set(v) for v in vals)

    ckpt = run / "checkpoints"
    names = {p.name for p in ckpt.iterdir()}
    expected = {"iter_0000020.safetensors", "iter_0000040.safetensors", "ema_0000020.safetensors",
                "ema_0000040.safetensors", "last.safetensors", "last_ema.safetensors", "best.safetensors",
                "state_0000020.safetensors", "state_0000040.safetensors"}
    assert names == expected
    for name in expected - {"state_0000020.safetensors", "state_0000040.safetensors"}:
        model = load_model(ckpt / name)
        assert model.config.width == 8
        meta = read_metadata(ckpt / name)
        # the checkpoint alone documents its run
        assert build_config(json.loads(meta[CONFIG_KEY])) == cfg
    last = load_model(ckpt / "last.safetensors")
    final = load_model(ckpt / "iter_0000040.safetensors")
    assert torch.equal(flat_weights(last), flat_weights(final))
    assert not torch.equal(flat_weights(last), flat_weights(load_model(ckpt / "last_ema.safetensors")))
    best = read_metadata(ckpt / "best.safetensors")
    assert best["nafft_weights"] == "ema" and int(best["nafft_iteration"]) == summary["best"]["iter"]
    assert float(best["nafft_val_psnr"]) == pytest.approx(max(v["ema_psnr"] for v in vals), abs=1e-4)
    assert load_config(run / "config.yaml") == cfg


def test_refuses_to_overwrite_and_resume_checks_the_model(pair_data, tmp_path):
    cfg = tiny_config(pair_data, train={"iterations": 3, "val_every": 0})
    run = tmp_path / "run"
    train(cfg, run)
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds a run .*pass --resume"):
        train(cfg, run)
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before
    wider = tiny_config(pair_data, model={"width": 16}, train={"iterations": 3})
    with pytest.raises(CheckpointError, match="model in the config differs"):
        train(wider, run, resume=True)
    # resuming a finished run does nothing; --resume on an empty folder starts afresh
    assert train(cfg, run, resume=True)["iteration"] == 3
    assert train(cfg, tmp_path / "fresh", resume=True)["iteration"] == 3


class _Poisoned:
    """Wraps the criterion: the calls listed (0-based) return a NaN loss."""

    def __init__(self, criterion, bad):
        self.criterion, self.bad, self.calls = criterion, bad, 0
        self.weights = criterion.weights

    def __call__(self, pred, target):
        total, parts = self.criterion(pred, target)
        if self.bad is True or self.calls in self.bad:
            total = total * float("nan")
        self.calls += 1
        return total, parts


class _Snapshots(Callback):
    def __init__(self, trainer):
        self.trainer, self.weights, self.skipped = trainer, [flat_weights(trainer.net)], []

    def on_step(self, iteration, stats):
        self.weights.append(flat_weights(self.trainer.net))
        self.skipped.append(stats["skipped"])


def test_nonfinite_loss_skips_the_step_and_counts_it(pair_data, tmp_path):
    cfg = tiny_config(pair_data, train={"iterations": 6, "ema": 0.5})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.criterion = _Poisoned(trainer.criterion, {1, 2})
    snaps = trainer.callback = _Snapshots(trainer)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert summary["nonfinite_total"] == 2
    assert snaps.skipped == [0, 1, 1, 0, 0, 0]
    w = snaps.weights
    assert torch.equal(w[2], w[1]) and torch.equal(w[3], w[2])  # skipped: no update
    assert not torch.equal(w[4], w[3]) and torch.isfinite(w[-1]).all()
    assert trainer.ema.updates == 4
    logs = records(tmp_path / "run", "train")
    assert [r["skipped"] for r in logs] == [0, 1, 2, 2, 2, 2]
    assert "loss" not in logs[1] and logs[3]["loss"] == logs[3]["loss"]  # skipped steps leave no loss behind


def test_too_many_nonfinite_losses_in_a_row_stop_the_run(pair_data, tmp_path):
    cfg = tiny_config(pair_data, train={"iterations": 20, "max_nonfinite": 3})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.criterion = _Poisoned(trainer.criterion, True)
    start = flat_weights(trainer.net)
    try:
        with pytest.raises(TrainingDiverged, match=r"stopped at iteration 3: 3 non-finite losses in a row"):
            trainer.fit()
    finally:
        trainer.close()
    assert torch.equal(flat_weights(trainer.net), start)


def test_accumulation_and_precision_options(pair_data, tmp_path):
    base = tiny_config(pair_data, train={"iterations": 2})
    train(base, tmp_path / "a")
    accum = tiny_config(pair_data, train={"iterations": 2, "accumulate": 2})
    train(accum, tmp_path / "b")
    a, b = records(tmp_path / "a", "train"), records(tmp_path / "b", "train")
    # two micro-batches of 2 give the gradient of the batch of 4
    assert b[0]["loss"] == pytest.approx(a[0]["loss"], rel=1e-6)
    assert b[0]["grad_norm"] == pytest.approx(a[0]["grad_norm"], rel=1e-4)
    bf16 = tiny_config(pair_data, train={"iterations": 2, "amp": "bf16", "channels_last": True},
                       loss={"psnr": 1.0, "fft": 0.05, "edge": 0.05})
    train(bf16, tmp_path / "c")
    c = records(tmp_path / "c", "train")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in c)
    assert c[0]["loss"] == pytest.approx(a[0]["loss"] + 0.05 * c[0]["loss_fft"] + 0.05 * c[0]["loss_edge"], abs=0.3)
    fp16 = tiny_config(pair_data, train={"iterations": 3, "amp": "fp16"})
    train(fp16, tmp_path / "e")
    f = records(tmp_path / "e", "train")
    # the gradient scaler starts at 2^16 and halves on every overflow; those updates are skipped, not counted
    # as non-finite, and leave no inf in the logs
    assert f[-1]["amp_overflows"] >= 1 and f[-1]["amp_scale"] == 2.0**16 / 2 ** f[-1]["amp_overflows"]
    assert f[-1]["skipped"] == 0 and all(math.isfinite(r.get("grad_norm", 0.0)) for r in f)
    with pytest.raises(ConfigError, match=r"data\.batch_size \(4\) .* train\.accumulate \(3\)"):
        train(tiny_config(pair_data, train={"accumulate": 3}), tmp_path / "d")


def test_cli_train_resume_and_errors(pair_data, tmp_path, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_mapping(pair_data, train={"iterations": 2, "val_every": 0})))
    run = tmp_path / "run"
    assert main(["train", "-c", str(cfg_path), "--out", str(run), "--no-progress", "--set", "train.seed=7"]) == 0
    out = capsys.readouterr().out
    assert "finished iteration 2; validation PSNR" in out and "last.safetensors" in out
    assert load_config(run / "config.yaml").train.seed == 7
    # --resume without -c reads the run's config; more iterations continue the run
    assert main(["train", "--out", str(run), "--resume", "--no-progress", "--set", "train.iterations=3"]) == 0
    assert latest_state(run / "checkpoints")[0] == 3
    assert main(["train", "-c", str(cfg_path), "--out", str(tmp_path / "x"), "--set", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "resuming with changed settings: train.iterations" in err[0]
    assert err[-1] == f"nafft: error: {cfg_path}: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"
    assert main(["train", "--out", str(tmp_path / "y")]) == 2
    assert "-c/--config is required" in capsys.readouterr().err


_DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from nafft.engine.config import build_config
    from nafft.engine.trainer import Callback, train
    import json
    mapping = json.loads(sys.argv[1])
    run, mode = sys.argv[2], sys.argv[3]

    class KillAt(Callback):
        def on_step(self, iteration, stats):
            if iteration == 7:
                os.kill(os.getpid(), signal.SIGKILL)

    train(build_config(mapping), run, resume=mode == "resume", callback=KillAt() if mode == "kill" else None)
    """
)


def _drive(mapping, run, mode):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(mapping), str(run), mode], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(pair_data, tmp_path):
    mapping = tiny_mapping(
        pair_data,
        data={"num_workers": 2},
        loss={"psnr": 1.0, "fft": 0.01},
        train={"iterations": 10, "checkpoint_every": 3, "val_every": 5, "log_every": 1, "ema": 0.9},
    )
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = _drive(mapping, whole, "plain")
    assert done.returncode == 0, done.stderr
    dead = _drive(mapping, killed, "kill")
    assert dead.returncode == -9, dead.stderr  # SIGKILL at iteration 7, after the checkpoint of iteration 6
    assert latest_state(killed / "checkpoints")[0] == 6
    assert max(r["iter"] for r in records(killed, "train")) == 7  # iteration 7 was logged, then lost
    resumed = _drive(mapping, killed, "resume")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("last.safetensors", "last_ema.safetensors", "best.safetensors"):
        a, b = load_model(whole / "checkpoints" / name), load_model(killed / "checkpoints" / name)
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), (name, key)
    sa = load_state(whole / "checkpoints" / "state_0000010.safetensors")
    sb = load_state(killed / "checkpoints" / "state_0000010.safetensors")
    for key, x in sa["optimizer"]["state"][0].items():
        assert torch.equal(x, sb["optimizer"]["state"][0][key])

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("it_per_s", "images_per_s")} for r in rs]

    # the metrics log of the resumed run reads as if it had never stopped
    assert strip(records(killed, "train")) == strip(records(whole, "train"))
    assert records(killed, "val") == records(whole, "val")


def test_tensorboard_scalars_and_panels(pair_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(pair_data, train={"iterations": 2, "val_every": 2, "log_every": 1, "tensorboard": True})
    train(cfg, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/loss_psnr", "train/lr", "train/grad_norm", "val/psnr", "val/ssim"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    panel = events.Images("val_raw/0_blur_pred_sharp")[0]
    assert (panel.width, panel.height) == (3 * 37, 30)  # blur | prediction | sharp of a 30x37 image


def test_validation_reports_progress_per_image(pair_data, tmp_path):
    """A long validation showed nothing (the bar froze, then its rate and ETA were off); now every image pass is
    reported: 2 validation images x (blurry input once, raw weights, EMA weights)."""

    class Recorder(Callback):
        def __init__(self):
            self.calls = []

        def on_validation_progress(self, done, total):
            self.calls.append((done, total))

    recorder = Recorder()
    cfg = tiny_config(pair_data, train={"iterations": 4, "val_every": 2, "ema": 0.9})
    with one_thread():
        train(cfg, tmp_path / "run", callback=recorder)
    first = [(i, 6) for i in range(7)]  # input, raw, EMA: 3 passes over 2 images
    later = [(i, 4) for i in range(5)]  # the input's scores are kept
    assert recorder.calls == first + later


def test_progress_bar_leaves_validation_time_out_of_its_rate(monkeypatch):
    from nafft.cli.train import TrainProgress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: the bar is on
    clock = [100.0]
    progress = TrainProgress(enabled=True)
    progress.on_start(0, 10, Path("."))
    assert not progress.bar.disable
    progress.bar._time = lambda: clock[0]
    progress.bar.start_t = progress.bar.last_print_t = clock[0]
    clock[0] += 1.0
    progress.on_step(1, {"loss": 0.5, "lr": 1e-3})
    start = progress.bar.start_t
    progress.on_validation_progress(0, 2)
    clock[0] += 30.0  # a slow validation
    progress.on_validation_progress(1, 2)
    progress.on_validation_progress(2, 2)
    assert progress.val_bar is None  # the transient bar is gone
    assert progress.bar.start_t == pytest.approx(start + 30.0)  # 30 s not counted as training time
    progress.on_end({})


STATE_V1 = Path(__file__).parent / "data" / "state_0000002.safetensors"
STATE_V1_KEYS = {"format", "iteration", "model", "ema", "optimizer", "scaler", "schedule", "rng", "counters", "best",
                 "world_size", "config"}


def test_a_training_state_written_before_the_refactor_resumes(pair_data, tmp_path):
    """data/state_0000002.safetensors was written by the trainer of commit 62f2789 (format 1: width 4, one level,
    EMA 0.9, validated at iteration 2); a run in progress then must resume with today's code."""
    old = load_state(STATE_V1)
    assert set(old) == STATE_V1_KEYS and old["format"] == 1 and old["iteration"] == 2
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / STATE_V1.name).write_bytes(STATE_V1.read_bytes())
    cfg = tiny_config(pair_data, model={"width": 4, "enc_blocks": [1], "middle_blocks": 1, "dec_blocks": [1]},
                      train={"iterations": 4, "checkpoint_every": 2, "val_every": 2, "log_every": 1, "ema": 0.9})
    trainer = Trainer(cfg, run, resume=True)
    try:
        assert trainer.iteration == 2 and trainer.best == old["best"]
        for key, value in old["model"].items():
            assert torch.equal(trainer.net.state_dict()[key], value), key
        assert trainer.optimizer.state_dict()["state"][0]["step"] == 2
        assert trainer.ema.updates == old["ema"]["updates"]
        assert trainer.fit()["iteration"] == 4
    finally:
        trainer.close()
    assert set(load_state(run / "checkpoints" / "state_0000004.safetensors")) == STATE_V1_KEYS
    meta = read_metadata(run / "checkpoints" / "last_ema.safetensors")
    assert meta["nafft_weights"] == "ema" and meta["nafft_iteration"] == "4" and CONFIG_KEY in meta


class _Ends(Callback):
    def __init__(self):
        self.ends = []

    def on_end(self, summary):
        self.ends.append(summary["iteration"])


def test_on_end_runs_however_the_loop_ends(pair_data, tmp_path):
    """The progress bar stayed open when a finished run had nothing to do or the run diverged."""
    cfg = tiny_config(pair_data, train={"iterations": 2, "max_nonfinite": 2})
    ends = _Ends()
    train(cfg, tmp_path / "run", callback=ends)
    train(cfg, tmp_path / "run", resume=True, callback=ends)  # nothing to do
    trainer = Trainer(cfg, tmp_path / "diverges", callback=ends)
    trainer.criterion = _Poisoned(trainer.criterion, True)
    try:
        with pytest.raises(TrainingDiverged):
            trainer.fit()
    finally:
        trainer.close()
    assert ends.ends == [2, 2, 2]


def test_model_init_starts_a_new_run_from_given_weights(pair_data, tmp_path, capsys):
    first = tmp_path / "first"
    train(tiny_config(pair_data, train={"iterations": 3}), first)
    weights = first / "checkpoints" / "last.safetensors"
    source = load_model(weights)
    config = tiny_config(pair_data, [f"model.init={weights}"], train={"iterations": 2})
    assert config.model["init"] == str(weights) and "init" not in config.model_config().__dict__
    trainer = Trainer(config, tmp_path / "warm")
    assert torch.equal(flat_weights(trainer.net), flat_weights(source))  # before any step: the given weights
    assert trainer.iteration == 0 and not trainer.optimizer.state  # a fresh optimizer at iteration 0
    trainer.close()
    # another architecture: the tensors that fit are copied, the rest keep their random values
    wider = tiny_config(pair_data, [f"model.init={weights}", "model.middle_blocks=2"])
    partial = Trainer(wider, tmp_path / "partial")
    assert torch.equal(partial.net.state_dict()["intro.weight"], source.state_dict()["intro.weight"])
    partial.close()
    with pytest.raises(ConfigError, match="model.init: .*no such checkpoint file"):
        Trainer(tiny_config(pair_data, [f"model.init={tmp_path / 'none.safetensors'}"]), tmp_path / "bad")
    assert main(["train", "-c", str(first / "config.yaml"), "-o", str(tmp_path / "cli"), "--init", str(weights),
                 "--set", "train.iterations=1", "--no-progress"]) == 0
    assert yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())["model"]["init"] == str(weights)
    # a warm-started run resumes without repeating --init (the starting weights are not part of the architecture)
    longer = ["train", "-c", str(first / "config.yaml"), "-o", str(tmp_path / "cli"), "--resume",
              "--set", "train.iterations=2", "--no-progress"]
    assert main(longer) == 0
    assert yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())["train"]["iterations"] == 2


def test_memory_format_auto_trains_like_nchw(pair_data, tmp_path):
    # "auto" (the default) is channels_last on the CPU: another code path, the same training up to rounding
    assert LoopConfig().channels_last == "auto"
    auto = tiny_config(pair_data, train={"iterations": 2})
    nchw = tiny_config(pair_data, train={"iterations": 2, "channels_last": False})
    train(auto, tmp_path / "auto")
    train(nchw, tmp_path / "nchw")
    a, n = records(tmp_path / "auto", "train"), records(tmp_path / "nchw", "train")
    assert a[-1]["loss"] == pytest.approx(n[-1]["loss"], rel=1e-4)
    assert a[-1]["grad_norm"] == pytest.approx(n[-1]["grad_norm"], rel=1e-3)


def test_max_minutes_stops_at_a_log_step_with_a_checkpoint_and_resume_finishes(pair_data, tmp_path):
    run = tmp_path / "run"
    capped = tiny_config(pair_data, train={"iterations": 9, "log_every": 3, "checkpoint_every": 100,
                                           "max_minutes": 1e-9})
    summary = train(capped, run)
    assert summary["iteration"] == 3  # the first check, already past a deadline of 60 ns
    assert summary["validation"] is not None and read_metadata(run / "checkpoints" / "last.safetensors")
    assert latest_state(run / "checkpoints")[0] == 3
    unlimited = tiny_config(pair_data, train={"iterations": 9, "log_every": 3, "checkpoint_every": 100})
    assert train(unlimited, run, resume=True)["iteration"] == 9
    with pytest.raises(ConfigError, match="train.max_minutes must not be negative"):
        LoopConfig(max_minutes=-1)


def test_stop_at_ends_the_run_early_on_its_long_schedule_and_resume_continues(pair_data, tmp_path):
    run, whole = tmp_path / "run", tmp_path / "whole"
    stopped = tiny_config(pair_data, train={"iterations": 6, "log_every": 1, "checkpoint_every": 100, "stop_at": 4})
    summary = train(stopped, run)
    assert summary["iteration"] == 4 and latest_state(run / "checkpoints")[0] == 4
    lrs = [r["lr"] for r in records(run, "train")]
    train(tiny_config(pair_data, train={"iterations": 6, "log_every": 1, "checkpoint_every": 100}), whole)
    full = [r["lr"] for r in records(whole, "train")]
    assert lrs == full[:4] and full[3] > full[5]  # the 6-iteration schedule, cut at 4
    assert train(stopped, run, resume=True)["iteration"] == 4  # same stop: nothing to do
    go_on = tiny_config(pair_data, train={"iterations": 6, "log_every": 1, "checkpoint_every": 100})
    assert train(go_on, run, resume=True)["iteration"] == 6
    a, b = (load_model(r / "checkpoints" / "last.safetensors").state_dict() for r in (run, whole))
    assert all(torch.equal(a[k], b[k]) for k in a)  # stopping and continuing changes nothing
    with pytest.raises(ConfigError, match=r"train.stop_at \(7\) must not be above train.iterations \(6\)"):
        LoopConfig(iterations=6, stop_at=7)


def test_the_timing_trainer_takes_the_step_of_a_run(pair_data, tmp_path):
    """`Trainer.for_timing` (what time_training_steps measures) builds the run's model, loss and precision without
    data or files, and its step on a batch gives the weights a run's first step gives on that batch."""
    from nafft.experiments.runs import time_training_steps

    cfg = tiny_config(pair_data, train={"ema": 0.5})
    timing = Trainer.for_timing(cfg)
    run = Trainer(cfg, tmp_path / "run")
    try:
        assert timing.run_dir is None and not hasattr(timing, "saver")  # no run folder, no checkpoints
        assert flat_weights(timing.net).equal(flat_weights(run.net))  # the same seeded initialisation
        assert type(timing.criterion) is type(run.criterion) and timing.criterion.weights == run.criterion.weights
        batch = next(run._loader())
        lr = run.schedule.apply(run.optimizer, 0)
        for group in timing.optimizer.param_groups:
            group["lr"] = lr
        results = [trainer.step(*trainer.place(batch)) for trainer in (run, timing)]
        assert [status for _, _, status in results] == ["ok", "ok"]
        torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)  # the same loss terms
        assert flat_weights(timing.net).equal(flat_weights(run.net))
        assert not flat_weights(timing.net).equal(flat_weights(Trainer.for_timing(cfg).net))  # it did update
    finally:
        run.close()
    wall, cpu = time_training_steps(cfg, steps=2)
    assert wall > 0 and cpu > 0
