"""--strength S: the blend of input and restoration, in float before the one rounding (issue 19, point 5)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from nafft.cli import main
from nafft.data.io import decode_image, image_to_tensor, quantize, write_image
from nafft.errors import UserError
from nafft.inference import OpenedModel, Predictor, open_model
from tests.inference.conftest import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """8-bit RGB, 16-bit RGB, gray and RGBA inputs in one folder."""
    folder = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    write_image(folder / "rgb.png", rng.random((30, 37, 3)))
    write_image(folder / "deep.png", rng.random((21, 19, 3)), bit_depth=16)
    write_image(folder / "gray.png", rng.random((18, 23)))
    write_image(folder / "rgba.png", rng.random((17, 20, 3)), alpha=rng.random((17, 20)))
    return folder


def deblur(inputs, out, checkpoint, *options):
    assert main(["deblur", str(inputs), "-o", str(out), "--checkpoint", str(checkpoint), *options]) == 0
    return {p.name: decode_image(p) for p in sorted(out.iterdir())}


def test_strength_one_is_bit_identical_and_zero_returns_the_input(tmp_path, checkpoint, inputs):
    default = deblur(inputs, tmp_path / "default", checkpoint)
    one = deblur(inputs, tmp_path / "one", checkpoint, "--strength", "1")
    zero = deblur(inputs, tmp_path / "zero", checkpoint, "--strength", "0")
    assert sorted(default) == ["deep.png", "gray.png", "rgb.png", "rgba.png"]
    for name, (rgb, alpha, depth) in default.items():
        source_rgb, source_alpha, source_depth = decode_image(inputs / name)
        assert np.array_equal(one[name][0], rgb) and one[name][2] == depth, name
        assert not np.array_equal(rgb, source_rgb), name  # the model does change the image
        assert np.array_equal(zero[name][0], source_rgb) and zero[name][2] == source_depth, name
        if source_alpha is not None:
            assert np.array_equal(zero[name][1], source_alpha) and np.array_equal(alpha, source_alpha)


def test_a_half_strength_is_the_float_blend_rounded_once(tmp_path, checkpoint, inputs):
    half = deblur(inputs, tmp_path / "half", checkpoint, "--strength", "0.5", "--tile", "0")
    predictor = Predictor(open_model(checkpoint, device="cpu"), tile=0)
    for name in ("rgb.png", "deep.png"):
        rgb, _, depth = decode_image(inputs / name)
        x = image_to_tensor(rgb)
        pred = predictor(x)
        expected = quantize((x + 0.5 * (pred - x)).permute(1, 2, 0).numpy(), depth)
        assert np.array_equal(half[name][0], expected), name
        restored = quantize(pred.permute(1, 2, 0).numpy(), depth).astype(int)
        between = (np.minimum(rgb, restored) - 1 <= half[name][0]) & (half[name][0] <= np.maximum(rgb, restored) + 1)
        assert between.all(), name


def test_strength_zero_does_not_run_the_model():
    class Refuses(nn.Module):
        def forward(self, x):
            raise AssertionError("the model ran")

    x = torch.rand(3, 20, 24)
    out = Predictor(OpenedModel.from_network(Refuses(), device="cpu"), strength=0)(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "strong"])
def test_strength_outside_zero_to_one_is_refused(strength):
    with pytest.raises(UserError, match="--strength must be"):
        Predictor(OpenedModel.from_network(nn.Identity(), device="cpu"), strength=strength)


def test_out_of_range_strength_is_a_one_line_cli_error(tmp_path, checkpoint, inputs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["deblur", str(inputs / "rgb.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint),
              "--strength", "2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "nafft deblur: error: argument --strength: expected 'auto' or a number from 0 to 1, got '2'")
    assert not (tmp_path / "o").exists()


def test_eval_scores_the_blend_and_records_it(tmp_path, checkpoint):
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "pairs" / "blur" / name, rng.random((24, 28, 3)))
        write_image(tmp_path / "pairs" / "sharp" / name, rng.random((24, 28, 3)))
    scores = {}
    for strength in ("0", "0.5", "1"):
        out = tmp_path / f"eval-{strength}"
        assert main(["eval", "--data", str(tmp_path / "pairs"), "-o", str(out), "--checkpoint", str(checkpoint),
                     "--strength", strength, "--panels", "0"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["settings"]["strength"] == float(strength)
        scores[strength] = summary
    zero = scores["0"]
    assert zero["psnr"] == zero["input_psnr"] and zero["ssim"] == zero["input_ssim"]  # the input, scored
    assert scores["1"]["psnr"] != zero["psnr"] and scores["0.5"]["psnr"] not in (zero["psnr"], scores["1"]["psnr"])
