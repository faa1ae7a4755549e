import numpy as np
import pytest

from nafft.cli import main
from nafft.data.io import decode_image, write_image
from nafft.data.pairs import find_pairs
from nafft.data.synth import (
    SynthError,
    SynthSettings,
    Trajectory,
    dead_leaves,
    gopro_blur,
    kernel_blur,
    make_pair,
    motion_kernel,
    random_trajectory,
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
    blurred = [make_pair(SynthSettings(size=64, seed=1), i) for i in range(4)]
    still = [make_pair(SynthSettings(size=64, seed=1, strength=0.0, noise=0.0), i) for i in range(4)]
    stronger = [make_pair(SynthSettings(size=64, seed=1, strength=2.0), i) for i in range(4)]
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
        base = make_pair(SynthSettings(source=source, size=48, seed=4), 2)
        for changes in ({"blur": "kernel"}, {"strength": 2.5}, {"noise": 0.0}):
            other = make_pair(SynthSettings(source=source, size=48, seed=4, **changes), 2)
            np.testing.assert_array_equal(other.sharp, base.sharp)
            assert not np.array_equal(other.blur, base.blur)
    centre = dead_leaves(40, np.random.default_rng(9))
    np.testing.assert_array_equal(dead_leaves(40, np.random.default_rng(9), margin=13)[13:53, 13:53], centre)


def test_frame_averaging_equals_kernel_convolution_for_pure_translation():
    canvas = np.random.default_rng(0).random((80, 80, 3))
    for seed in range(3):
        trajectory = random_trajectory(np.random.default_rng(seed), 1.0, 40)
        trajectory.angles[:] = 0.0
        kernel = motion_kernel(trajectory)
        assert kernel.sum() == pytest.approx(1.0) and kernel.min() >= 0
        np.testing.assert_allclose(gopro_blur(canvas, trajectory, 40), kernel_blur(canvas, kernel, 40), atol=1e-5)
    still = Trajectory(np.zeros((9, 2)), np.zeros(9))
    np.testing.assert_allclose(gopro_blur(canvas, still, 40), canvas[20:60, 20:60], atol=1e-6)


def test_trajectory_is_centred_on_the_middle_frame():
    trajectory = random_trajectory(np.random.default_rng(3), 1.0, 256)
    n = len(trajectory.angles)
    assert n % 2 == 1 and n >= 9
    np.testing.assert_allclose(trajectory.shifts[n // 2], 0.0, atol=1e-9)
    assert trajectory.angles[n // 2] == pytest.approx(0.0)
    steps = np.linalg.norm(np.diff(trajectory.shifts, axis=0), axis=1)
    assert steps.max() <= 0.75 + 1e-9 or n == 121


def test_dead_leaves_is_seeded_varied_and_in_range():
    a = dead_leaves(64, np.random.default_rng(0))
    b = dead_leaves(64, np.random.default_rng(0))
    c = dead_leaves(64, np.random.default_rng(1))
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert len(np.unique((a * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


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
