"""`nafft export --format pth`: the official NAFNet layout, run by spandrel (the loader of chaiNNer and ComfyUI) with
the outputs of nafft without TLC; variants official NAFNet cannot run are refused, naming the feature."""

import enum
import sys
import types

import pytest
import torch

from nafft.cli import main
from nafft.errors import UserError
from nafft.inference import open_model
from nafft.inference.nafnet_pth import export_official_pth, official_blockers
from nafft.models import ModelConfig
from nafft.weights import DEFAULT_MODEL, bundled_weights
from tests.engine.training_fixtures import make_pair_data, one_thread, tiny_config
from tests.inference.conftest import save_tiny_checkpoint

SPANDREL_TOLERANCE = 1e-5


def import_spandrel():
    """spandrel, imported without torchvision when it is absent (the Makefile installs spandrel with --no-deps so
    that pip does not fetch a CUDA PyTorch): two of spandrel's other architectures import names from
    torchvision.transforms.functional at import time; stand-ins that refuse to run take their place here. NAFNet
    uses none of them."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        def unavailable(*args, **kwargs):
            raise RuntimeError("torchvision is not installed")

        functional = types.ModuleType("torchvision.transforms.functional")
        functional.InterpolationMode = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC")
        functional.rotate = functional.normalize = unavailable
        transforms = types.ModuleType("torchvision.transforms")
        transforms.functional = functional
        package = types.ModuleType("torchvision")
        package.transforms = transforms
        for name, module in (("torchvision", package), ("torchvision.transforms", transforms),
                             ("torchvision.transforms.functional", functional)):
            sys.modules.setdefault(name, module)
    import spandrel

    return spandrel


def spandrel_run(path, x: torch.Tensor) -> torch.Tensor:
    spandrel = import_spandrel()
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.id == "NAFNet" and descriptor.scale == 1
    with torch.inference_mode():
        return descriptor.model.eval()(x)


def nafft_run(source, x: torch.Tensor) -> torch.Tensor:
    opened = open_model(source, device="cpu", tlc=False, channels_last=False)
    with torch.inference_mode():
        return opened.network(x)


def test_spandrel_runs_the_bundled_weights_and_their_pth_export(tmp_path, capsys):
    x = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(0))
    want = nafft_run(DEFAULT_MODEL, x)
    direct = spandrel_run(bundled_weights(DEFAULT_MODEL), x)  # the shipped safetensors as they are
    assert (direct - want).abs().max() <= SPANDREL_TOLERANCE
    assert main(["export", "--format", "pth", "-o", str(tmp_path / "photo.pth"), "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert f"no --checkpoint: using the bundled default model {DEFAULT_MODEL}" in captured.err
    assert "official NAFNet layout" in captured.out
    saved = torch.load(tmp_path / "photo.pth", weights_only=True)
    assert list(saved) == ["params"] and "intro.weight" in saved["params"]
    assert (spandrel_run(tmp_path / "photo.pth", x) - want).abs().max() <= SPANDREL_TOLERANCE


def test_a_trained_doconv_checkpoint_runs_in_spandrel(tmp_path_factory, tmp_path):
    """A tiny NAFNet with DO-Conv trained a few steps by nafft: exported folded, spandrel gives nafft's output."""
    from nafft.engine.trainer import train

    pair_data = make_pair_data(tmp_path_factory)
    with one_thread():
        train(tiny_config(pair_data, model={"conv": "doconv"}), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.safetensors"
    assert main(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "tiny.pth")]) == 0
    x = torch.rand(2, 3, 37, 30, generator=torch.Generator().manual_seed(1))
    want = nafft_run(checkpoint, x)  # DO-Conv folded on opening, as in the export
    assert (spandrel_run(tmp_path / "tiny.pth", x) - want).abs().max() <= SPANDREL_TOLERANCE


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"attention": "eca"}, "ECA channel attention"),
        ({"skip": "fft"}, "FFT residual blocks on the encoder-decoder skips"),
        ({"block_fft": True}, "an FFT branch in every block"),
        ({"attention_gate": "sigmoid"}, "a sigmoid gate on the channel attention"),
        ({"dw_expand": 1}, "dw_expand 1"),
    ],
)
def test_variants_official_nafnet_cannot_run_are_refused_by_name(tmp_path, capsys, changes, named):
    checkpoint = save_tiny_checkpoint(tmp_path / "v.safetensors", **changes)
    assert main(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "v.pth")]) == 2
    err = capsys.readouterr().err
    assert named in err and "--format onnx" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "v.pth").exists() and not list(tmp_path.glob(".*.tmp"))


def test_blockers_of_plain_and_folded_configs():
    assert official_blockers(ModelConfig(width=8, enc_blocks=(1, 2), dec_blocks=(1, 1))) == []
    assert official_blockers(ModelConfig(width=8, conv="doconv", enc_blocks=(1, 1), dec_blocks=(1, 1))) == []
    assert official_blockers(ModelConfig(width=8, enc_blocks=(1, 0), dec_blocks=(1, 1))) == [
        "a level without blocks (spandrel counts levels from the blocks)"
    ]
    notes = official_blockers(ModelConfig(width=8, attention="eca", skip="fft", enc_blocks=(1,), dec_blocks=(1,)))
    assert len(notes) == 2


def test_export_official_pth_refuses_before_writing(tmp_path):
    opened = open_model(save_tiny_checkpoint(tmp_path / "e.safetensors", attention="eca"), device="cpu")
    with pytest.raises(UserError, match="ECA channel attention"):
        export_official_pth(opened, tmp_path / "e.pth")
    assert not (tmp_path / "e.pth").exists()
