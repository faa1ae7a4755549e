"""One name for a model everywhere: the bundled model's name works wherever a checkpoint or preset is taken, and
commands that default to it do so alike."""

import numpy as np
import torch

from nafft.cli import main
from nafft.data.io import decode_image, write_image
from nafft.models import load_model
from nafft.weights import DEFAULT_MODEL, bundled_weights


def test_profile_takes_the_bundled_name(capsys):
    assert main(["profile", DEFAULT_MODEL, "--size", "32", "--runs", "0", "--format", "json"]) == 0
    out = capsys.readouterr().out
    params = sum(p.numel() for p in load_model(bundled_weights(DEFAULT_MODEL)).parameters())
    assert f'"params": {params}' in out


def test_deblur_checkpoint_takes_the_bundled_name_and_equals_the_default(tmp_path):
    write_image(tmp_path / "a.png", np.random.default_rng(0).random((24, 30, 3)))
    common = ["--threads", "1", "--tile", "0"]
    assert main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "named"), "--checkpoint", DEFAULT_MODEL,
                 *common]) == 0
    assert main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "default"), *common]) == 0
    named, default = decode_image(tmp_path / "named" / "a.png")[0], decode_image(tmp_path / "default" / "a.png")[0]
    np.testing.assert_array_equal(named, default)


def test_export_without_checkpoint_exports_the_default_model(tmp_path, capsys):
    assert main(["export", "-o", str(tmp_path / "default.safetensors"), "--threads", "1"]) == 0
    assert f"using the bundled default model {DEFAULT_MODEL}" in capsys.readouterr().err
    exported = load_model(tmp_path / "default.safetensors")
    bundled = load_model(bundled_weights(DEFAULT_MODEL))
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert (exported(x) - bundled(x)).abs().max() <= 1e-5


def test_a_misspelt_bundled_name_is_suggested(capsys):
    assert main(["profile", "nafft-foto", "--runs", "0"]) == 2
    assert "(did you mean 'nafft-photo'?)" in capsys.readouterr().err
