"""The strength guard: `--strength auto` chooses, per image, how much of the restoration to keep (issue 19)."""

import argparse

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nafft.cli import main
from nafft.cli.args import strength
from nafft.data.io import decode_image, write_image
from nafft.errors import UserError
from nafft.inference import Predictor, open_model
from nafft.inference.guard import StrengthGuard, blend_strengths, load_guard, read_guard_card, save_guard
from nafft.inference.predict import check_strength
from tests.inference.conftest import save_tiny_checkpoint


def fixed_guard(bias: float, width: int = 4) -> StrengthGuard:
    """A guard whose answer is sigmoid(bias) whatever it sees."""
    guard = StrengthGuard(width)
    with torch.no_grad():
        guard.head[-1].weight.zero_()
        guard.head[-1].bias.fill_(bias)
    return guard.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_one_strength_per_image_in_the_unit_interval():
    torch.manual_seed(0)
    guard = StrengthGuard(6).eval()
    x = torch.rand(3, 3, 40, 56)
    s = guard(x, x + 0.05 * torch.randn_like(x))
    assert s.shape == (3,) and bool(((s > 0) & (s < 1)).all())
    # each image is judged alone: the same image gets the same strength in any batch
    torch.testing.assert_close(guard(x[1:2], x[1:2] + 0.0), guard(x, x)[1:2])


def test_large_images_are_measured_on_tiles_spread_over_them_and_averaged():
    from nafft.inference.guard import tile_features, tile_starts_for

    assert tile_starts_for(300, 512, 4) == [0]
    assert tile_starts_for(2000, 512, 4) == [0, 496, 992, 1488]
    assert tile_starts_for(600, 512, 4) == [0, 88]
    torch.manual_seed(0)
    guard = StrengthGuard(4).eval()
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(guard.measure(x, y), tile_features(x, y))
    quarters = [tile_features(x[..., a : a + 32, b : b + 32], y[..., a : a + 32, b : b + 32])
                for a in (0, 32) for b in (0, 32)]
    torch.testing.assert_close(guard.measure(x, y, tile=32), torch.stack(quarters).mean(dim=0))


def feature(name, image, restored):
    from nafft.inference.guard import FEATURE_NAMES, tile_features

    return float(tile_features(image, restored)[0, FEATURE_NAMES.index(name)])


def test_the_measurements_see_blur_direction_change_and_brightness():
    torch.manual_seed(0)
    sharp = 0.1 + 0.8 * torch.rand(1, 3, 16, 16).repeat_interleave(8, 2).repeat_interleave(8, 3)  # 128 x 128 steps
    pool = torch.nn.functional.avg_pool2d
    soft = pool(sharp, 9, 1, 4, count_include_pad=False)  # out of focus, or a blob-shaped shake
    shaken = pool(sharp, (1, 9), 1, (0, 4), count_include_pad=False)  # a horizontal shake
    # a blurred image's edges are less crisp at every scale; a shaken one's run one way
    for k in (3, 7, 15):
        assert feature(f"input_crisp_{k}", soft, soft) < feature(f"input_crisp_{k}", sharp, sharp) - 0.5
    assert feature("input_anisotropy", shaken, shaken) > 0.5 > 0.1 > feature("input_anisotropy", sharp, sharp)
    # how much the restoration changes the image, and its brightness change in 8-bit levels
    darker = sharp - 2.0 / 255.0
    assert feature("change_rms", sharp, darker) == pytest.approx(float(torch.log(torch.tensor(2 / 255 + 1e-4))),
                                                                 abs=1e-3)
    assert feature("brightness_change", sharp, darker) == pytest.approx(-2.0, abs=1e-3)
    assert feature("change_rms", sharp, sharp) < feature("change_rms", sharp, darker) - 2.0


def test_blend_strengths_blends_each_image_with_its_own_strength():
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    out = blend_strengths(x, y, torch.tensor([0.25, 1.0]))
    assert torch.all(out[0] == 0.25) and torch.all(out[1] == 1.0)


def test_save_and_load_keep_the_weights_and_the_card(tmp_path):
    torch.manual_seed(1)
    guard = StrengthGuard(5).eval()
    path = tmp_path / "g.safetensors"
    save_guard(guard, path, {"model": "tiny", "note": "test"})
    loaded = load_guard(path)
    assert loaded.width == 5 and read_guard_card(path)["model"] == "tiny" and loaded.card["note"] == "test"
    x = torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(loaded(x, x.flip(-1)), guard(x, x.flip(-1)))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_files_that_are_not_guards_are_refused_in_one_line_naming_them(tmp_path):
    with pytest.raises(UserError, match=r"missing\.safetensors: no such guard file"):
        load_guard(tmp_path / "missing.safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("not tensors")
    with pytest.raises(UserError, match=r"text\.safetensors: not a safetensors file"):
        load_guard(text)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(UserError, match=r"plain\.safetensors: not a nafft guard"):
        load_guard(plain)
    wrong = tmp_path / "wrong.safetensors"
    save_guard(StrengthGuard(8), wrong, {})
    bad = load_guard(wrong).state_dict()
    save_file(bad, str(wrong), metadata={"nafft_guard": '{"width": 4}'})
    with pytest.raises(UserError, match=r"wrong\.safetensors: guard tensors do not match a width-4 guard"):
        load_guard(wrong)


def test_a_ceiling_caps_the_strength_and_travels_with_the_guard_file(tmp_path):
    from nafft.inference.guard import with_ceiling

    x = torch.rand(2, 3, 32, 32)
    sure = fixed_guard(3.0)  # sigmoid(3) = 0.95
    assert sure.ceiling == 1.0
    torch.testing.assert_close(sure(x, x), torch.full((2,), torch.sigmoid(torch.tensor(3.0)).item()))
    save_guard(sure, tmp_path / "g.safetensors", {"model": "m"})
    capped = with_ceiling(tmp_path / "g.safetensors", tmp_path / "capped.safetensors", 0.75, "a test")
    assert capped.ceiling == 0.75
    loaded = load_guard(tmp_path / "capped.safetensors")
    torch.testing.assert_close(loaded(x, x), torch.full((2,), 0.75))
    assert loaded.card["ceiling"] == 0.75 and loaded.card["ceiling_reason"] == "a test" and loaded.card["model"] == "m"
    doubtful = fixed_guard(-1.0)  # below the ceiling: unchanged
    doubtful.ceiling = 0.75
    torch.testing.assert_close(doubtful(x, x), torch.full((2,), torch.sigmoid(torch.tensor(-1.0)).item()))
    assert load_guard(tmp_path / "g.safetensors").ceiling == 1.0  # the source file is left as it was


@pytest.mark.parametrize("ceiling", [0.0, 1.5, "high", True])
def test_a_ceiling_outside_the_unit_interval_is_a_one_line_error_naming_the_file(tmp_path, ceiling):
    import json

    from nafft.inference.guard import check_ceiling

    with pytest.raises(UserError, match="ceiling must be a number in \\(0, 1\\]"):
        check_ceiling(ceiling)
    path = tmp_path / "g.safetensors"
    save_guard(fixed_guard(0.0), path, {})
    tensors = load_guard(path).state_dict()
    save_file(tensors, str(path), metadata={"nafft_guard": json.dumps({"width": 4, "ceiling": ceiling})})
    with pytest.raises(UserError, match=r"g\.safetensors: a guard's ceiling must be") as info:
        load_guard(path)
    assert "\n" not in str(info.value)


def test_strength_auto_is_accepted_by_the_checks_and_the_command_line():
    assert check_strength("auto") == "auto" and check_strength(" AUTO ") == "auto"
    assert check_strength(0.3) == 0.3
    with pytest.raises(UserError, match="'auto' or a number from 0 to 1"):
        check_strength("strong")
    assert strength("Auto") == "auto" and strength("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="'auto' or a number from 0 to 1, got '2'"):
        strength("2")


@pytest.mark.parametrize("bias, expected", [(-40.0, 0.0), (40.0, 1.0)])
def test_auto_applies_the_guards_strength(checkpoint, tmp_path, bias, expected):
    guard_path = tmp_path / "guard.safetensors"
    save_guard(fixed_guard(bias), guard_path, {"model": "tiny"})
    opened = open_model(checkpoint, device="cpu", guard=guard_path)
    x = torch.rand(2, 3, 33, 41)
    auto = Predictor(opened, tile=0, strength="auto")
    out = auto(x)
    assert auto.last_strengths == pytest.approx([expected] * 2, abs=1e-6)
    reference = Predictor(opened, tile=0, strength=expected)(x)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-6)


def test_auto_without_a_guard_is_the_full_restoration(checkpoint):
    opened = open_model(checkpoint, device="cpu")
    assert opened.guard is None  # a checkpoint has no guard unless one is given
    x = torch.rand(3, 30, 37)
    auto = Predictor(opened, tile=0, strength="auto")
    assert torch.equal(auto(x), Predictor(opened, tile=0)(x)) and auto.last_strengths == [1.0]


def test_a_middle_strength_from_the_guard_blends_before_the_one_rounding(checkpoint, tmp_path):
    guard_path = tmp_path / "guard.safetensors"
    save_guard(fixed_guard(0.0), guard_path, {"model": "tiny"})  # sigmoid(0) = 0.5
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", rng.random((30, 37, 3)))
    common = ["--checkpoint", str(checkpoint), "--tile", "0"]
    assert main(["deblur", str(folder), "-o", str(tmp_path / "auto"), "--strength", "auto", "--guard",
                 str(guard_path), *common]) == 0
    assert main(["deblur", str(folder), "-o", str(tmp_path / "half"), "--strength", "0.5", *common]) == 0
    assert np.array_equal(decode_image(tmp_path / "auto" / "a.png")[0], decode_image(tmp_path / "half" / "a.png")[0])



class ScriptedGuard(torch.nn.Module):
    """Answers the strengths it is given, one per image, in order."""

    def __init__(self, answers):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.answers = list(answers)

    def forward(self, image, restored):
        out = torch.tensor(self.answers[: image.shape[0]])
        del self.answers[: image.shape[0]]
        return out


def darkened(guard) -> Predictor:
    from nafft.inference import OpenedModel

    class Darken(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    opened = OpenedModel.from_network(Darken(), device="cpu")
    opened.guard = guard
    return Predictor(opened, tile=0, strength="auto")


def test_each_image_of_a_batch_gets_the_guards_strength_for_it():
    run = darkened(ScriptedGuard([0.0, 1.0, 0.5]))
    x = torch.full((3, 3, 8, 8), 0.8)
    out = run(x)
    assert run.last_strengths == pytest.approx([0.0, 1.0, 0.5])
    assert [round(float(v), 4) for v in out[:, 0, 0, 0]] == [0.8, 0.4, 0.6]


def test_auto_smoothing_follows_the_guard_through_a_moving_average():
    run = darkened(ScriptedGuard([1.0, 0.0, 0.0, 0.0]))
    run.auto_smoothing = 0.5
    x = torch.full((3, 8, 8), 0.8)
    applied = []
    for _ in range(4):
        out = run(x)
        applied.append(run.last_strengths[0])
        assert float(out[0, 0, 0]) == pytest.approx(0.8 - 0.4 * applied[-1])
    assert applied == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_video_under_auto_starts_each_clip_afresh_and_smooths_the_strength(tmp_path):
    pytest.importorskip("av")
    from nafft.inference.video import AUTO_SMOOTHING, deblur_video
    from tests.inference.test_video import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    run = darkened(ScriptedGuard([1.0, 0.0, 0.0, 0.0, 0.2]))
    run.smoothed_strength = 0.9  # left over from another clip
    assert deblur_video(clip, tmp_path / "out.mp4", run).error is None
    expected = 1.0
    for _ in range(3):
        expected += AUTO_SMOOTHING * (0.0 - expected)
    assert run.auto_smoothing == AUTO_SMOOTHING and run.smoothed_strength == pytest.approx(expected)
