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
