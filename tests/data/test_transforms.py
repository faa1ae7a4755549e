import numpy as np
import pytest
import torch

from nafft.data.transforms import NUM_TRANSFORMS, dihedral, undo_dihedral


def test_dihedral_is_one_definition_for_arrays_and_tensors():
    """Training augments (H, W, C) arrays and the self-ensemble turns (B, C, H, W) tensors: the same 8 transforms."""
    image = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    seen = set()
    for t in range(NUM_TRANSFORMS):
        array = dihedral(image, t)
        tensor = dihedral(batch, t, axes=(-2, -1))
        np.testing.assert_array_equal(tensor[0].permute(1, 2, 0).numpy(), array)
        np.testing.assert_array_equal(undo_dihedral(array, t), image)
        assert torch.equal(undo_dihedral(tensor, t, axes=(-2, -1)), batch)
        seen.add(array.tobytes())
    assert len(seen) == NUM_TRANSFORMS  # eight different images: the whole group
    np.testing.assert_array_equal(dihedral(image, 4), image[:, ::-1])  # t >= 4: a left-right flip after the turns
    np.testing.assert_array_equal(dihedral(image, 1), np.rot90(image))
    with pytest.raises(ValueError, match="0..7"):
        dihedral(image, 8)
