import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nafft.data.datasets import (
    DatasetError,
    PairedEvalDataset,
    PairedTrainDataset,
    SampleSampler,
    batch_sample_numbers,
)
from nafft.data.io import write_image
from nafft.data.transforms import NUM_TRANSFORMS, crop, dihedral
from tests.data.conftest import coordinate_image, make_pair

PATCH = 16


@pytest.fixture
def coord_root(tmp_path):
    """Three pairs whose pixels encode (row, column); blur B = 1000 + i, sharp B = 2000 + i."""
    for i, (h, w) in enumerate([(40, 48), (33, 57), (16, 20)]):
        write_image(tmp_path / "blur" / f"{i}.png", coordinate_image(h, w, 1000 + i), bit_depth=16)
        write_image(tmp_path / "sharp" / f"{i}.png", coordinate_image(h, w, 2000 + i), bit_depth=16)
    return tmp_path


def _as_uint16(tensor):
    return np.rint(tensor.numpy().transpose(1, 2, 0) * 65535).astype(np.int64)


def test_crops_are_aligned_and_match_their_parameters(coord_root):
    data = PairedTrainDataset(coord_root, PATCH, seed=7)
    assert len(data) == 3
    for k in range(40):
        sample = data[k]
        index, top, left, transform = data.sample_params(k)
        pair = data.pairs[index]
        assert sample["name"] == pair.name
        blur, sharp = _as_uint16(sample["blur"]), _as_uint16(sample["sharp"])
        assert sample["blur"].shape == (3, PATCH, PATCH) and sample["blur"].dtype == torch.float32
        np.testing.assert_array_equal(blur[..., :2], sharp[..., :2])  # the same place in both images
        assert (blur[..., 2] == 1000 + index).all() and (sharp[..., 2] == 2000 + index).all()
        h, w = pair.size
        expected = dihedral(crop(coordinate_image(h, w, 0), top, left, PATCH), transform)
        np.testing.assert_array_equal(blur[..., :2], expected[..., :2])
        assert 0 <= top <= h - PATCH and 0 <= left <= w - PATCH


def test_all_eight_transforms_reachable_and_distinct(coord_root):
    data = PairedTrainDataset(coord_root, PATCH, seed=0)
    seen = {data.sample_params(k)[3] for k in range(100)}
    assert seen == set(range(NUM_TRANSFORMS))
    patch = coordinate_image(PATCH, PATCH, 0)
    outputs = {dihedral(patch, t).tobytes() for t in range(NUM_TRANSFORMS)}
    assert len(outputs) == NUM_TRANSFORMS
    assert {data.sample_params(k)[3] for k in range(100)} == seen  # pure function of k
    plain = PairedTrainDataset(coord_root, PATCH, seed=0, augment=False)
    for k in range(30):
        a, b = data.sample_params(k), plain.sample_params(k)
        assert a[:3] == b[:3] and b[3] == 0


def test_each_epoch_is_a_permutation_and_epochs_differ(coord_root):
    make_pair(coord_root, "3.png")
    make_pair(coord_root, "4.png")
    data = PairedTrainDataset(coord_root, PATCH, seed=1)
    n = len(data)
    epochs = [[data.sample_params(k)[0] for k in range(e * n, (e + 1) * n)] for e in range(6)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    other = PairedTrainDataset(coord_root, PATCH, seed=2)
    assert [other.sample_params(k) for k in range(20)] != [data.sample_params(k) for k in range(20)]
    # out-of-order access (as a resumed run or another worker does) gives the same answers
    assert [data.sample_params(k) for k in reversed(range(20))] == [
        PairedTrainDataset(coord_root, PATCH, seed=1).sample_params(k) for k in reversed(range(20))]


def test_sampler_slices():
    sampler = SampleSampler(start=2, batch_size=3, rank=1, world_size=2)
    assert list(itertools.islice(iter(sampler), 6)) == [15, 16, 17, 21, 22, 23]
    ranks = [list(batch_sample_numbers(5, 4, r, 3)) for r in range(3)]
    assert sum(ranks, []) == list(batch_sample_numbers(5, 12))
    with pytest.raises(ValueError):
        SampleSampler(0, 4, rank=2, world_size=2)


def _batches(data, start, count, workers):
    loader = DataLoader(data, batch_size=4, sampler=SampleSampler(start, 4), num_workers=workers)
    return list(itertools.islice(iter(loader), count))


def test_resume_draws_the_same_batches_with_any_worker_count(coord_root):
    data = PairedTrainDataset(coord_root, PATCH, seed=3)
    full = _batches(data, 0, 5, workers=0)
    resumed = _batches(data, 2, 3, workers=2)
    for a, b in zip(full[2:], resumed):
        assert a["name"] == b["name"]
        torch.testing.assert_close(a["blur"], b["blur"], rtol=0, atol=0)
        torch.testing.assert_close(a["sharp"], b["sharp"], rtol=0, atol=0)
    assert not torch.equal(full[0]["blur"], full[1]["blur"])


def test_images_smaller_than_the_patch_are_listed(coord_root):
    write_image(coord_root / "blur" / "tiny.png", np.zeros((10, 30, 3), np.uint8))
    write_image(coord_root / "sharp" / "tiny.png", np.zeros((10, 30, 3), np.uint8))
    with pytest.raises(DatasetError) as info:
        PairedTrainDataset(coord_root, 17, seed=0)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("2 image(s) smaller than the 17x17")
    assert any("2.png (20x16)" in line for line in lines) and any("tiny.png (30x10)" in line for line in lines)


def test_eval_dataset_returns_full_images(coord_root):
    data = PairedEvalDataset(coord_root)
    sample = data[1]
    assert sample["name"] == "1.png"
    assert sample["blur"].shape == (3, 33, 57) and sample["sharp"].shape == (3, 33, 57)
    np.testing.assert_array_equal(_as_uint16(sample["blur"])[..., :2], coordinate_image(33, 57, 0)[..., :2])
    roots = PairedEvalDataset([coord_root, coord_root])
    assert len(roots) == 6
