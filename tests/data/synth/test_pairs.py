import numpy as np
import pytest

from nafft.cli import main
from nafft.data.io import decode_image, write_image
from nafft.data.pair_folders import find_pairs
from nafft.data.synth import (
    SynthError,
    SynthSettings,
    dead_leaves,
    make_pair,
    skimage_photo_paths,
    synthesize_pairs,
)


def _gradient_energy(image):
    image = image.astype(np.float64)
    return np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean()


def _tree_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_same_arguments_give_identical_files_with_any_worker_count(tmp_path):
    paths = synthesize_pairs(tmp_path / "a", count=3, size=40, seed=5, workers=1)
    assert [p.name for p in paths] == ["000000.png", "000001.png", "000002.png"]
    synthesize_pairs(tmp_path / "b", count=3, size=40, seed=5, workers=2)
    synthesize_pairs(tmp_path / "c", count=3, size=40, seed=6, workers=1)
    a, b, c = (_tree_bytes(tmp_path / x) for x in "abc")
    assert len(a) == 6 and a == b
    assert all(a[name] != c[name] for name in a)
    pairs = find_pairs(tmp_path / "a")
    assert [p.name for p in pairs] == ["000000.png", "000001.png", "000002.png"] and pairs[0].size == (40, 40)


def test_blur_lowers_psnr_and_sharpness():
    blurred = [make_pair(SynthSettings.basic(size=64, seed=1), i) for i in range(4)]
    still = [make_pair(SynthSettings.basic(size=64, seed=1, strength=0.0, noise=0.0), i) for i in range(4)]
    stronger = [make_pair(SynthSettings.basic(size=64, seed=1, strength=2.0), i) for i in range(4)]
    for pair, same in zip(blurred, still):
        np.testing.assert_array_equal(pair.sharp, same.sharp)  # the sharp image does not depend on the blur
        assert pair.psnr < 32 and pair.motion_px > 0
        assert _gradient_energy(pair.blur) < 0.9 * _gradient_energy(pair.sharp)
        assert same.psnr > 50  # no motion, no noise: only float rounding separates them
    assert np.mean([p.psnr for p in stronger]) < np.mean([p.psnr for p in blurred]) - 1.0


def test_sharp_images_depend_only_on_the_scene_settings():
    for source in ("deadleaves", "skimage"):
        if source == "skimage" and not skimage_photo_paths():
            continue
        base = make_pair(SynthSettings.basic(source=source, size=48, seed=4), 2)
        for changes in ({"blur": "kernel"}, {"strength": 2.5}, {"noise": 0.0}, {"jpeg": 1.0}, {"defocus": 1.0},
                        {"long_motion": 1.0, "still": 0.0}, {"still": 1.0, "long_motion": 0.0}):
            other = make_pair(SynthSettings.basic(source=source, size=48, seed=4, **changes), 2)
            np.testing.assert_array_equal(other.sharp, base.sharp)
            assert not np.array_equal(other.blur, base.blur)
    centre = dead_leaves(40, np.random.default_rng(9))
    np.testing.assert_array_equal(dead_leaves(40, np.random.default_rng(9), margin=13)[13:53, 13:53], centre)


def test_folder_source_and_kernel_blur(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(tmp_path / "photos" / f"p{i}.png", rng.random((50, 70, 3)).astype(np.float32))
    synthesize_pairs(tmp_path / "out", source=str(tmp_path / "photos"), count=2, size=32, blur="kernel")
    blur, _, _ = decode_image(tmp_path / "out" / "blur" / "000001.png")
    sharp, _, _ = decode_image(tmp_path / "out" / "sharp" / "000001.png")
    assert blur.shape == sharp.shape == (32, 32, 3)
    assert _gradient_energy(blur) < _gradient_energy(sharp)


def test_skimage_source_reads_only_shipped_photos(tmp_path):
    pytest.importorskip("skimage")
    assert skimage_photo_paths(), "scikit-image ships its sample photographs"
    pair = make_pair(SynthSettings(source="skimage", size=48, seed=2), 0)
    assert pair.sharp.shape == (48, 48, 3) and pair.psnr < 60


def test_bad_settings_and_foreign_output(tmp_path):
    with pytest.raises(SynthError, match="unknown source 'nowhere'"):
        synthesize_pairs(tmp_path / "x", source="nowhere", count=1, size=16)
    with pytest.raises(SynthError, match="unknown blur"):
        SynthSettings(blur="gauss")
    synthesize_pairs(tmp_path / "o", count=1, size=16, seed=1)
    with pytest.raises(SynthError, match="different seed"):
        synthesize_pairs(tmp_path / "o", count=1, size=16, seed=2)
    write_image(tmp_path / "foreign" / "blur" / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(SynthError, match="not made by nafft synth"):
        synthesize_pairs(tmp_path / "foreign", count=1, size=16)


def test_synth_cli_resumes_and_reports_psnr(tmp_path, capsys):
    argv = ["synth", "--count", "2", "--size", "24", "--seed", "3", "--out", str(tmp_path / "s"), "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 pairs written" in out and "input PSNR" in out
    before = _tree_bytes(tmp_path / "s")
    argv[2] = "3"
    assert main(argv) == 0
    assert "1 pairs written to" in (out := capsys.readouterr().out) and "2 already there" in out
    after = _tree_bytes(tmp_path / "s")
    assert len(after) == 6 and all(after[k] == v for k, v in before.items())
    assert main(["synth", "--count", "1", "--source", "nowhere", "--out", str(tmp_path / "t")]) == 2
    assert "unknown source" in capsys.readouterr().err


def test_highlights_clip_in_both_images_when_the_exposure_saturates():
    pairs = [make_pair(SynthSettings(size=48, seed=7, response="gamma", jpeg=0.0), i) for i in range(40)]
    bright = [p for p in pairs if p.exposure > 1.4]
    dark = [p for p in pairs if p.exposure < 0.9]
    assert bright and dark
    assert all(0.25 <= p.exposure <= 1.75 for p in pairs)
    # dead leaves reach full brightness in places: over-exposed, they clip in the sharp image and smear clipped
    # light into the blurred one; under-exposed, nothing clips
    assert np.mean([(p.sharp == 255).mean() for p in bright]) > 0.01
    assert np.mean([(p.blur >= 254).mean() for p in bright]) > 0.005
    assert max((p.sharp == 255).mean() for p in dark) == 0


def test_shares_of_jpeg_defocus_and_still_pairs_and_their_ranges():
    settings = SynthSettings(size=24, seed=8, jpeg=0.5, jpeg_quality=(70, 80), defocus=0.3, still=0.2,
                             long_motion=0.2)
    pairs = [make_pair(settings, i) for i in range(150)]
    jpeg = [p.jpeg_quality for p in pairs if p.jpeg_quality]
    assert len(jpeg) / len(pairs) == pytest.approx(0.5, abs=0.1) and 70 <= min(jpeg) and max(jpeg) <= 80
    radii = [p.defocus_px for p in pairs if p.defocus_px]
    assert len(radii) / len(pairs) == pytest.approx(0.3, abs=0.1) and 0.5 <= min(radii) and max(radii) <= 2.0
    assert np.mean([p.motion_px <= 1 for p in pairs]) == pytest.approx(0.2, abs=0.08)
    assert np.mean([p.motion_px >= 20 for p in pairs]) == pytest.approx(0.2, abs=0.08)


def test_still_pairs_leave_the_sharp_image_alone():
    settings = SynthSettings(size=48, seed=9, still=1.0, long_motion=0.0, noise=0.0, jpeg=0.0, defocus=0.0)
    pairs = [make_pair(settings, i) for i in range(12)]
    for pair in pairs:
        diff = np.abs(pair.blur.astype(int) - pair.sharp.astype(int))
        assert pair.motion_px <= 1.0
        if pair.motion_px == 0:
            assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # float rounding at most
        else:
            assert pair.psnr > 28  # sub-pixel motion: only the edges soften
    assert any(p.motion_px == 0 for p in pairs) and any(p.motion_px > 0 for p in pairs)


def test_camera_response_changes_both_images_alike():
    gamma = make_pair(SynthSettings(size=48, seed=10, response="gamma", saturation=0.0), 3)
    assert [make_pair(SynthSettings(size=48, seed=10, response="gamma", saturation=0.0), 3).sharp.tobytes()] == \
        [gamma.sharp.tobytes()]
    canvas = make_pair(SynthSettings.basic(size=48, seed=10, noise=0.0, still=1.0), 3)
    assert np.abs(gamma.sharp.astype(int) - canvas.sharp.astype(int)).max() <= 1  # gamma 2.2 both ways
    others = [make_pair(SynthSettings(size=48, seed=10, saturation=0.0), i) for i in range(6)]
    assert sum(not np.array_equal(p.sharp, make_pair(SynthSettings(size=48, seed=10, saturation=0.0,
                                                                   response="gamma"), i).sharp)
               for i, p in enumerate(others)) >= 3


def test_shake_generator_ignores_the_camera_options_and_keeps_the_source():
    shake = SynthSettings(blur="shake", size=40, seed=11)
    assert (shake.jpeg, shake.saturation, shake.response, shake.still) == (0.0, 0.0, "gamma", 0.0)
    pair = make_pair(shake, 0)
    leaves = make_pair(SynthSettings.basic(size=40, seed=11, noise=0.0, still=1.0), 0)
    assert pair.sharp.shape == (40, 40, 3) and pair.psnr < 40 and pair.frames == 0
    assert pair.motion_px >= 2
    assert leaves.sharp.shape == pair.sharp.shape


@pytest.mark.parametrize("changes, message", [
    ({"saturation": 1.2}, "saturation must be in"),
    ({"jpeg": 1.5}, "jpeg is a fraction"),
    ({"still": 0.7, "long_motion": 0.5}, "long_motion \\+ still"),
    ({"jpeg_quality": (90, 60)}, "jpeg_quality must be"),
    ({"response": "linear"}, "unknown response 'linear'"),
    ({"size": 4}, "size must be at least 8"),
    ({"downscale": (0.5, 2.0)}, "downscale must be factors of at least 1"),
    ({"downscale": (3.0, 2.0)}, "downscale must be two numbers"),
])
def test_bad_values_are_one_line_errors(changes, message):
    with pytest.raises(SynthError, match=message) as info:
        SynthSettings(**changes)
    assert "\n" not in str(info.value)


def test_synth_cli_options_and_their_errors(tmp_path, capsys):
    out = tmp_path / "cam"
    argv = ["synth", "--count", "2", "--size", "8", "--out", str(out), "--workers", "1", "--jpeg", "1",
            "--jpeg-quality", "50-60", "--defocus", "0"]
    assert main(argv) == 0
    import json

    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["jpeg"] == 1.0 and manifest["jpeg_quality"] == [50, 60] and manifest["defocus"] == 0.0
    assert manifest["saturation"] == 0.75  # the rest: the realistic profile
    assert "JPEG 100%" in capsys.readouterr().out
    assert main(["synth", "--count", "1", "--out", str(tmp_path / "b"), "--profile", "basic", "--jpeg", "0.5",
                 "--workers", "1"]) == 0
    basic = json.loads((tmp_path / "b" / "synth.json").read_text())
    assert (basic["saturation"], basic["response"], basic["jpeg"]) == (0.0, "gamma", 0.5)
    assert main(["synth", "--count", "1", "--out", str(tmp_path / "c"), "--blur", "shake", "--jpeg", "0.5"]) == 2
    assert "takes no camera options (got --jpeg)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--count", "1", "--out", str(tmp_path / "d"), "--jpeg-quality", "90-60"])
    assert "1 <= LOW <= HIGH <= 100" in capsys.readouterr().err


def test_folders_of_an_older_generator_are_refused(tmp_path):
    import json

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "synth.json").write_text(json.dumps({"nafft_synth": 1, "source": "deadleaves"}))
    with pytest.raises(SynthError, match="older nafft synth"):
        synthesize_pairs(tmp_path / "old", count=1, size=16)


def test_out_of_focus_scenes_are_soft_in_the_target_too():
    soft = SynthSettings.basic(size=48, seed=12, soft=1.0, noise=0.0, still=1.0)
    focused = SynthSettings.basic(size=48, seed=12, noise=0.0, still=1.0)
    pairs = [(make_pair(soft, i), make_pair(focused, i)) for i in range(8)]
    assert all(1.0 <= s.soft_px <= 4.0 and f.soft_px == 0 for s, f in pairs)
    # the same scene, softer in the target (where out of focus), and the blurred input as soft as its target
    assert all(_gradient_energy(s.sharp) < _gradient_energy(f.sharp) for s, f in pairs)
    assert np.mean([s.psnr for s, _ in pairs]) > 35
    share = [make_pair(SynthSettings(size=16, seed=13), i).soft_px > 0 for i in range(200)]
    assert np.mean(share) == pytest.approx(0.25, abs=0.08)


def test_wide_depth_of_field_with_bokeh_is_in_both_images():
    wide = SynthSettings.basic(size=64, seed=21, soft=1.0, soft_radius=(8.0, 24.0), bokeh=1.0, noise=0.0, still=1.0)
    plain = SynthSettings.basic(size=64, seed=21, soft=1.0, soft_radius=(8.0, 24.0), noise=0.0, still=1.0)
    pairs = [(make_pair(wide, i), make_pair(plain, i)) for i in range(6)]
    assert all(8.0 <= b.soft_px <= 24.0 and b.soft_px == p.soft_px for b, p in pairs)
    # highlights pushed above full scale make brighter out-of-focus areas than the same scene without them
    assert all(b.sharp.astype(float).mean() > p.sharp.astype(float).mean() for b, p in pairs)
    # part of the scene: the still pair's input is its target (up to sub-pixel motion)
    assert np.mean([b.psnr for b, _ in pairs]) > 35


def test_noise_gain_range_sets_the_noise_level():
    quiet = SynthSettings.basic(size=48, seed=5, still=1.0, noise_gain=(0.01, 0.02))
    usual = SynthSettings.basic(size=48, seed=5, still=1.0)
    exact = [i for i in range(12) if make_pair(quiet, i).motion_px == 0]
    assert exact and all(make_pair(quiet, i).psnr > make_pair(usual, i).psnr + 6 for i in exact)
    with pytest.raises(SynthError, match="noise_gain"):
        SynthSettings(noise_gain=(0.0, 1.0))


def test_folders_made_before_a_setting_existed_are_kept(tmp_path):
    import json

    synthesize_pairs(tmp_path / "d", count=2, size=16)
    manifest = json.loads((tmp_path / "d" / "synth.json").read_text())
    for key in ("soft_radius", "bokeh", "noise_gain", "log_uniform", "downscale"):
        del manifest[key]
    (tmp_path / "d" / "synth.json").write_text(json.dumps(manifest))
    assert len(synthesize_pairs(tmp_path / "d", count=3, size=16)) == 3
    with pytest.raises(SynthError, match="log_uniform"):
        synthesize_pairs(tmp_path / "d", count=3, size=16, log_uniform=0.5)
