import json

import pytest
import torch

import nafft
import nafft.weights
from nafft.errors import CheckpointError, UserError
from nafft.inference import DeviceError, OpenedModel, Predictor, open_model, resolve_device
from nafft.inference.opened_model import MissingCheckpointError, default_model_note
from nafft.models import build_model, save_model
from tests.inference.conftest import randomize, save_tiny_checkpoint, tiny_config


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A bundled-weights folder of this test's own: nafft-photo with a card."""
    folder = tmp_path / "weights"
    model = randomize(build_model(tiny_config(conv="doconv")), std=0.05).eval()
    card = {"name": "nafft-photo", "summary": "tiny test model"}
    train = json.dumps({"data": {"patch_size": 48}})
    save_model(model, folder / "nafft-photo.safetensors",
               {nafft.weights.CARD_KEY: json.dumps(card), "nafft_train_config": train})
    monkeypatch.setattr(nafft.weights, "_folder", lambda: folder)
    return folder, model


def test_a_bundled_name_opens_folded_with_its_card_and_training_crop(bundled):
    folder, source = bundled
    opened = open_model("nafft-photo", device="cpu")
    assert opened.kind == "bundled" and opened.name == "nafft-photo" and opened.trained
    assert opened.path == folder / "nafft-photo.safetensors" and opened.card["summary"] == "tiny test model"
    assert opened.architecture.conv == "doconv" and opened.config.conv == "conv"  # folded for inference
    assert opened.train_size == 48 and opened.train_size_source == "checkpoint"
    assert opened.tlc and opened.tlc_window == (72, 72)  # 1.5 x the 48 px training crops
    assert opened.padding_multiple == 4 and opened.width == 8 and opened.expand == 2
    assert opened.device == torch.device("cpu") and opened.precisions == ("float32",)
    assert opened.channels_last and opened.memory_format == torch.channels_last  # the faster format on the CPU
    assert not any(m.training for m in opened.network.modules())
    assert opened.describe() == ("nafft-photo: width 8, 2 encoder blocks, sca, skip identity; TLC on (train size 48, "
                                 "checkpoint); device cpu")
    assert opened.guard is None  # this folder ships no guard for it
    x = torch.rand(1, 3, 30, 37)
    with torch.no_grad():  # folding keeps the function
        unfolded = nafft.models.enable_tlc(source, 48)(x)
        torch.testing.assert_close(opened.network(x), unfolded, rtol=1e-4, atol=1e-5)
    assert open_model(None, device="cpu").path == opened.path  # no source: the bundled default model
    assert nafft.open_model is open_model and nafft.load_default_model().kind == "bundled"


def test_a_checkpoint_path_and_a_preset_open_with_what_they_record(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "run" / "best.safetensors", patch_size=32)
    opened = open_model(str(path), device="cpu", tlc=False, channels_last=False)
    assert opened.kind == "checkpoint" and opened.name == "best" and opened.card == {}
    assert not opened.tlc and opened.tlc_window is None and opened.train_size == 32
    assert not opened.channels_last and opened.memory_format == torch.contiguous_format
    assert opened.metadata["nafft_train_config"] == json.dumps({"data": {"patch_size": 32}})
    preset = open_model("nafnet-small", device="cpu")
    assert preset.kind == "preset" and not preset.trained and preset.path is None
    assert preset.train_size == 256 and preset.train_size_source == "default" and preset.tlc_window == (384, 384)
    assert preset.padding_multiple == 16 and preset.width == 16
    assert "(untrained preset)" in preset.describe()


def test_names_that_are_nothing_are_one_line_errors(tmp_path, bundled):
    with pytest.raises(UserError, match=r"^'nafnet-w23' is neither a bundled model \(nafft-photo\), a preset "
                                        r"nor an existing checkpoint file \(did you mean 'nafnet-w32'\?\)$"):
        open_model("nafnet-w23", device="cpu")
    with pytest.raises(UserError, match=r"\(did you mean 'nafft-photo'\?\)$"):  # bundled names are suggested too
        open_model("nafft-foto", device="cpu")
    with pytest.raises(CheckpointError, match="missing.safetensors: no such checkpoint file"):
        open_model(tmp_path / "missing.safetensors", device="cpu")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        open_model("runs/x/best.pth", device="cpu")  # named like a file: reported as a missing file


def test_without_bundled_weights_a_source_is_required(tmp_path, monkeypatch):
    monkeypatch.setattr(nafft.weights, "_folder", lambda: tmp_path / "none")
    with pytest.raises(MissingCheckpointError, match="--checkpoint is required .* official NAFNet weights"):
        open_model(device="cpu")


def test_the_default_model_note_names_the_card_only_without_a_source(bundled):
    assert default_model_note("x.safetensors") is None
    assert default_model_note(None) == ("no --checkpoint: using the bundled default model nafft-photo (tiny test "
                                        "model); see `nafft models`")


def test_device_names_resolve_in_one_place():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "tpu", "meta"):
        with pytest.raises(DeviceError, match=f"--device {bad}: not"):
            open_model("nafnet-small", device=bad)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device is available here"):
            open_model("no-such-model", device="cuda")  # the device is checked before the name is looked up


def test_a_network_in_memory_is_described_from_itself():
    identity = OpenedModel.from_network(torch.nn.Identity(), device="cpu", name="identity")
    assert identity.padding_multiple == 1 and identity.config is None and identity.architecture is None
    assert identity.width == 32 and not identity.tlc and identity.kind == "network"
    net = nafft.models.enable_tlc(randomize(build_model(tiny_config())).eval(), 16)
    opened = OpenedModel.from_network(net, device="cpu")
    assert opened.network is net and opened.train_size == 16 and opened.train_size_source == "given"
    assert opened.tlc_window == (24, 24)
    x = torch.rand(3, 21, 19)
    with torch.no_grad():
        torch.testing.assert_close(Predictor(opened, tile=0)(x), net(x[None])[0])


def test_a_bundled_models_guard_is_opened_with_it_and_named_in_its_line(bundled, tmp_path):
    from nafft.inference.guard import StrengthGuard, save_guard

    folder, _ = bundled
    save_guard(StrengthGuard(4), folder / "guards" / "nafft-photo.safetensors", {"model": "nafft-photo"})
    opened = open_model("nafft-photo", device="cpu")
    assert isinstance(opened.guard, StrengthGuard) and opened.guard.card["model"] == "nafft-photo"
    assert opened.describe().endswith("; strength guard (--strength auto); device cpu")
    assert open_model("nafft-photo", device="cpu", guard=False).guard is None
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    assert open_model(checkpoint, device="cpu").guard is None  # other weights have none unless one is given
