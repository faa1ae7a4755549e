"""One atomic write for every file nafft makes: the umask's permissions (as open() gives), nothing half-written."""

import json
import os
import stat

import numpy as np
import pytest
import torch

from nafft.atomic_files import atomic_write, atomic_write_bytes


@pytest.fixture
def umask():
    """Set a umask for the test and restore the old one."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_the_umask_permissions_open_gives(tmp_path, umask, mask, expected):
    umask(mask)
    with open(tmp_path / "reference", "wb") as f:
        f.write(b"x")
    atomic_write_bytes(tmp_path / "sub" / "file.bin", b"data")
    assert mode(tmp_path / "sub" / "file.bin") == mode(tmp_path / "reference") == expected
    assert (tmp_path / "sub" / "file.bin").read_bytes() == b"data"


def test_an_existing_file_keeps_its_mode_as_with_open(tmp_path, umask):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def _tiny_model():
    from nafft.models import ModelConfig, build_model

    return build_model(ModelConfig(width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,), conv="doconv"))


def test_every_writer_gives_readable_files(tmp_path, umask):
    """Images, tiles, weights, training states, exports, reports: 0o644 under umask 022 (they were 0o600)."""
    from nafft.data.io import write_image
    from nafft.engine.evaluate import evaluate_model
    from nafft.engine.run_checkpoints import save_state
    from nafft.experiments.plots import plot_curves
    from nafft.inference import OpenedModel
    from nafft.inference.export import export_safetensors
    from nafft.models import save_model

    umask(0o022)
    rgb = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    files = [
        write_image(tmp_path / "img.png", rgb),
        write_image(tmp_path / "img16.png", rgb, bit_depth=16),
        write_image(tmp_path / "img.jpg", rgb),
        save_model(_tiny_model(), tmp_path / "w.safetensors"),
        save_state(tmp_path / "state.safetensors", {"iteration": 3, "x": torch.ones(2)}),
        export_safetensors(OpenedModel.from_network(_tiny_model(), device="cpu"), tmp_path / "folded.safetensors").path,
        plot_curves({"run": [[(1, 20.0), (2, 21.0)]]}, tmp_path / "curves.png", title="t"),
    ]
    write_image(tmp_path / "pairs" / "blur" / "a.png", rgb)
    write_image(tmp_path / "pairs" / "sharp" / "a.png", rgb)
    evaluate_model(OpenedModel.from_network(torch.nn.Identity(), device="cpu"), tmp_path / "pairs", tmp_path / "eval",
                   tile=0, panels=1, save_images=True)
    files += [p for p in (tmp_path / "eval").rglob("*") if p.is_file()]
    assert len(files) > 8
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files} == {
        str(p.relative_to(tmp_path)): oct(0o644) for p in files
    }
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["images"] == 1


def test_onnx_export_is_readable(tmp_path, umask):
    pytest.importorskip("onnxruntime")
    from nafft.inference import OpenedModel
    from nafft.inference.export import export_onnx

    umask(0o022)
    export_onnx(OpenedModel.from_network(_tiny_model(), device="cpu"), tmp_path / "m.onnx")
    assert mode(tmp_path / "m.onnx") == 0o644


def test_atomic_write_bytes_is_still_importable_from_data_io():
    from nafft.data import io

    assert io.atomic_write_bytes is atomic_write_bytes
