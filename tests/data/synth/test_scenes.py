import numpy as np
import pytest

from nafft.data.synth import package_photos
from nafft.data.synth.scenes import MAX_DOWNSCALE, PACKAGE_PHOTOS, dead_leaves, random_photo_crop


def test_dead_leaves_is_seeded_varied_and_in_range():
    a = dead_leaves(64, np.random.default_rng(0))
    b = dead_leaves(64, np.random.default_rng(0))
    c = dead_leaves(64, np.random.default_rng(1))
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert len(np.unique((a * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


def test_package_photos_are_the_listed_files_of_installed_packages():
    photos = package_photos()
    listed = {name for _, names in PACKAGE_PHOTOS.values() for name in names}
    assert all(p.is_file() and p.name in listed for p in photos)
    pytest.importorskip("skimage")
    assert {"astronaut.png", "chelsea.png"} <= {p.name for p in photos}
    assert package_photos(()) == []


def test_photo_crops_down_scale_without_aliasing_and_keep_the_centre():
    rng = np.random.default_rng(0)
    photo = (rng.random((600, 900, 3)) * 255).astype(np.uint8)
    crop = random_photo_crop(photo, 64, np.random.default_rng(1))
    wide = random_photo_crop(photo, 64, np.random.default_rng(1), margin=20)
    assert crop.shape == (64, 64, 3) and wide.shape == (104, 104, 3) and crop.dtype == np.float32
    np.testing.assert_allclose(wide[20:84, 20:84], crop, atol=1e-5)
    # white noise down-scaled with anti-aliasing loses variance; without it, it would keep all of it
    stds = [random_photo_crop(photo, 64, np.random.default_rng(s)).std() for s in range(12)]
    assert min(stds) < 0.6 * photo.std() / 255
    assert max(stds) <= photo.std() / 255 * 1.05
    small = (rng.random((70, 80, 3)) * 255).astype(np.uint8)
    assert random_photo_crop(small, 64, np.random.default_rng(2)).shape == (64, 64, 3)  # never up-scaled past 1
    assert MAX_DOWNSCALE >= 2


def test_photo_crops_keep_to_the_downscale_range_asked_for():
    rng = np.random.default_rng(0)
    photo = (rng.random((600, 900, 3)) * 255).astype(np.uint8)
    # the default range is (1, MAX_DOWNSCALE): the same crops as without the argument
    np.testing.assert_array_equal(random_photo_crop(photo, 64, np.random.default_rng(3)),
                                  random_photo_crop(photo, 64, np.random.default_rng(3), 0, (1.0, MAX_DOWNSCALE)))
    # at the photograph's own resolution white noise keeps its variance; down-scaled 3-4 times it loses most of it
    native = [random_photo_crop(photo, 64, np.random.default_rng(s), 0, (1.0, 1.0)).std() for s in range(6)]
    far = [random_photo_crop(photo, 64, np.random.default_rng(s), 0, (3.0, 4.0)).std() for s in range(6)]
    noise = photo.std() / 255
    assert min(native) > 0.65 * noise  # (sub-pixel positions interpolate a little)
    assert max(far) < 0.35 * noise


def test_focus_masks_cover_all_or_part_and_keep_the_centre():
    from nafft.data.synth.scenes import focus_mask

    masks = [focus_mask(np.random.default_rng(s), 48, 0) for s in range(60)]
    whole = [m.min() == 1.0 for m in masks]
    assert np.mean(whole) == pytest.approx(1 / 3, abs=0.15)
    partial = [m for m, w in zip(masks, whole) if not w]
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in partial)
    assert np.mean([m.mean() for m in partial]) == pytest.approx(0.5, abs=0.15)  # in focus about half the time
    assert all(np.abs(np.diff(m, axis=1)).max() < 0.5 for m in partial)  # soft edges, no jumps
    wide = focus_mask(np.random.default_rng(7), 48, 10)
    np.testing.assert_array_equal(wide[10:58, 10:58], focus_mask(np.random.default_rng(7), 48, 0))


def test_depth_of_field_blurs_only_where_the_mask_says():
    from nafft.data.synth.scenes import depth_of_field

    rng = np.random.default_rng(0)
    canvas = rng.random((40, 40, 3))
    mask = np.zeros((40, 40), np.float32)
    mask[:, 20:] = 1.0
    out = depth_of_field(canvas, mask, 2.0)
    np.testing.assert_array_equal(out[:, :20], canvas[:, :20])
    assert out[:, 24:].std() < 0.6 * canvas[:, 24:].std()
