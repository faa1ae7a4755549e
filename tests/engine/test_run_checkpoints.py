"""Training-state files: exact round trip without pickle, newest by iteration number, atomic writes, pruning."""

import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from nafft.engine import run_checkpoints as ckpt
from nafft.errors import CheckpointError


def test_state_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.9))
    net(torch.rand(4, 3)).sum().backward()
    opt.step()
    random.seed(5)
    np.random.seed(5)
    state = {
        "iteration": 12,
        "optimizer": opt.state_dict(),  # int keys, tuples (betas), 0-dim tensors (step)
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "best": None,
        "nan": float("nan"),
        "bf16": torch.arange(4, dtype=torch.bfloat16),
    }
    path = ckpt.save_state(tmp_path / "state_0000012.safetensors", state)
    back = ckpt.load_state(path)
    assert back["iteration"] == 12 and back["best"] is None and np.isnan(back["nan"])
    assert torch.equal(back["bf16"], state["bf16"]) and back["bf16"].dtype == torch.bfloat16
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.9)
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(back["optimizer"]["state"][0][key], value)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])  # loads as a real optimizer state
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    np.random.set_state(back["rng"]["numpy"])
    a = np.random.rand()
    np.random.set_state(state["rng"]["numpy"])
    assert a == np.random.rand()
    # plain safetensors: tensors plus JSON metadata, nothing to unpickle
    with safe_open(str(path), framework="pt") as f:
        assert ckpt.STATE_KEY in f.metadata()


def test_latest_state_sorts_by_number_not_by_name(tmp_path):
    for it in (9, 10, 100, 99):
        (tmp_path / ckpt.iter_name(it, "state")).write_bytes(b"x")
    # an 8-digit iteration sorts before 7-digit names as text; temporary and foreign files are ignored
    (tmp_path / "state_12345678.safetensors").write_bytes(b"x")
    (tmp_path / ".state_99999999.safetensors.tmp").write_bytes(b"x")
    (tmp_path / "state_final.safetensors").write_bytes(b"x")
    it, path = ckpt.latest_state(tmp_path)
    assert it == 12345678 and path.name == "state_12345678.safetensors"
    assert [i for i, _ in ckpt.state_files(tmp_path)] == [9, 10, 99, 100, 12345678]
    assert ckpt.latest_state(tmp_path / "nothing") is None


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.safetensors"
    target.write_bytes(b"old")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_load_state_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="not a nafft training state"):
        ckpt.load_state(tmp_path / "weights.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.safetensors: cannot read training state"):
        ckpt.load_state(tmp_path / "junk.safetensors")


def test_prune_keeps_the_newest(tmp_path):
    for it in (1, 2, 3, 4):
        for kind in ("iter", "ema", "state"):
            (tmp_path / ckpt.iter_name(it, kind)).write_bytes(b"x")
    ckpt.prune(tmp_path, keep_weights=2, keep_states=1)
    assert [i for i, _ in ckpt.weight_files(tmp_path, "iter")] == [3, 4]
    assert [i for i, _ in ckpt.weight_files(tmp_path, "ema")] == [3, 4]
    assert [i for i, _ in ckpt.state_files(tmp_path)] == [4]
    ckpt.prune(tmp_path, keep_weights=0, keep_states=1)  # 0 keeps every weight file
    assert len(ckpt.weight_files(tmp_path, "iter")) == 2
