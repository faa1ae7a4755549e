"""Paired datasets and the sampler that makes training resumable.

Training randomness is a pure function of (seed, global sample number k), never of the loader's state:

- `PairedTrainDataset[k]`: epoch = k // N (N pairs); the epoch's order is a permutation drawn from a generator
  seeded with (seed, epoch); the pair is perm[k % N]; the crop position and the flip/rotation come from a
  generator seeded with (seed, k).
- `SampleSampler(start, batch_size, rank, world_size)`: global batch b is the sample numbers
  [b * batch_size * world_size, (b + 1) * batch_size * world_size); rank r takes its `batch_size` slice.

So iteration i on rank r sees the same crops whether the run was interrupted or not, with any number of loader
workers. Images smaller than the patch are rejected up front (listed in one error) rather than padded, because
padding would teach the network artificial borders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler

from nafft.data.io import decode_image, image_to_tensor
from nafft.data.pair_folders import Pair, PairingError, Roots, gather_pairs
from nafft.data.transforms import NUM_TRANSFORMS, crop, dihedral
from nafft.errors import UserError

# Separate the streams of the two uses of the seed.
_PERMUTATION_STREAM = 1
_SAMPLE_STREAM = 2



class DatasetError(UserError):
    """A data set that cannot be used as asked (e.g. images smaller than the training patch)."""


def load_pairs(roots: Roots, check_sizes: bool = True) -> list[Pair]:
    """Pairs of one root or of several (`gather_pairs`: in root order, each root sorted by name, names prefixed
    with the root when there are several).

    Raises:
        PairingError: every problem found, one per line.
        DatasetError: no roots given.
    """
    if not isinstance(roots, (str, os.PathLike)) and not list(roots):
        raise DatasetError("no data roots given")
    pairs, problems = gather_pairs(roots, check_sizes=check_sizes)
    where = roots if isinstance(roots, (str, os.PathLike)) else ", ".join(map(str, roots))
    if problems:
        raise PairingError(where, problems)
    if not pairs:
        raise PairingError(where, [f"{where}: no image pairs found"])
    return pairs


def _load_pair(pair: Pair, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    blur, _, _ = decode_image(pair.blur, rows)
    sharp, _, _ = decode_image(pair.sharp, rows)
    if blur.shape != sharp.shape:
        raise PairingError(pair.blur.parent, [
            f"size mismatch: {pair.blur} is {blur.shape[1]}x{blur.shape[0]} but {pair.sharp} is "
            f"{sharp.shape[1]}x{sharp.shape[0]}"])
    return blur, sharp


class PairedTrainDataset(Dataset):
    """Random aligned `patch_size` crops with random flips/rotations, indexed by global sample number.

    Args:
        roots: one pair root or several (flat or split layouts, see `nafft.data.pair_folders`).
        patch_size: side of the square crops.
        seed: non-negative integer; all randomness derives from it and the sample number.
        augment: apply one of the 8 flips/rotations (the crop positions do not depend on this flag).
        pairs: use these pairs instead of scanning `roots` (sizes must be filled in).

    `len(dataset)` is the number of pairs N; `dataset[k]` accepts any k >= 0 (sample k of epoch k // N) and
    returns `{"blur": (3, P, P) float32, "sharp": (3, P, P) float32, "name": str}`.

    Raises:
        DatasetError: an image is smaller than the patch (all such images listed), or bad arguments.
        PairingError: pairing problems under `roots`.
    """

    def __init__(self, roots: Roots | None, patch_size: int, seed: int, augment: bool = True,
                 pairs: Sequence[Pair] | None = None):
        if int(patch_size) < 1:
            raise DatasetError(f"patch_size must be positive, got {patch_size}")
        if int(seed) < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed}")
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.pairs = list(pairs) if pairs is not None else load_pairs(roots)
        if not self.pairs:
            raise DatasetError("no training pairs")
        small = [p for p in self.pairs if p.size is None or min(p.size) < self.patch_size]
        if small:
            lines = "\n".join(
                f"  {p.blur} ({'size unknown' if p.size is None else f'{p.size[1]}x{p.size[0]}'})" for p in small)
            raise DatasetError(f"{len(small)} image(s) smaller than the {self.patch_size}x{self.patch_size} "
                               f"training patch (use a smaller patch or remove them):\n{lines}")
        self._epoch = -1
        self._order = np.arange(0)

    def __len__(self) -> int:
        return len(self.pairs)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng((self.seed, _PERMUTATION_STREAM, epoch))
            self._order = rng.permutation(len(self.pairs))
            self._epoch = epoch
        return self._order

    def sample_params(self, k: int) -> tuple[int, int, int, int]:
        """(pair index, top, left, transform) of global sample number `k`; a pure function of (seed, k)."""
        k = int(k)
        if k < 0:
            raise IndexError(f"sample number must be non-negative, got {k}")
        count = len(self.pairs)
        index = int(self._permutation(k // count)[k % count])
        height, width = self.pairs[index].size
        rng = np.random.default_rng((self.seed, _SAMPLE_STREAM, k))
        top = int(rng.integers(0, height - self.patch_size + 1))
        left = int(rng.integers(0, width - self.patch_size + 1))
        transform = int(rng.integers(0, NUM_TRANSFORMS))
        return index, top, left, transform if self.augment else 0

    def __getitem__(self, k: int) -> dict:
        index, top, left, transform = self.sample_params(k)
        pair = self.pairs[index]
        bottom = top + self.patch_size
        blur, sharp = _load_pair(pair, rows=bottom)  # PNG rows below the crop are not decoded
        if blur.shape[1] != pair.size[1] or blur.shape[0] < bottom:
            raise PairingError(pair.blur.parent, [f"{pair.blur}: size changed on disk since the scan "
                                                  f"(was {pair.size[1]}x{pair.size[0]})"])
        out = {}
        for key, array in (("blur", blur), ("sharp", sharp)):
            out[key] = image_to_tensor(dihedral(crop(array, top, left, self.patch_size), transform))
        out["name"] = pair.name
        return out


class PairedEvalDataset(Dataset):
    """Full-size pairs for validation/testing: `{"blur": (3, H, W), "sharp": (3, H, W), "name": str}`.

    Args:
        roots: one pair root or several.
        pairs: use these pairs instead of scanning `roots`.
    """

    def __init__(self, roots: Roots | None, pairs: Sequence[Pair] | None = None):
        self.pairs = list(pairs) if pairs is not None else load_pairs(roots)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        blur, sharp = _load_pair(pair)
        return {"blur": image_to_tensor(blur), "sharp": image_to_tensor(sharp), "name": pair.name}


def batch_sample_numbers(batch: int, batch_size: int, rank: int = 0, world_size: int = 1) -> range:
    """The sample numbers that rank `rank` draws for global batch `batch`."""
    first = (batch * world_size + rank) * batch_size
    return range(first, first + batch_size)


class SampleSampler(Sampler[int]):
    """Infinite sampler of global sample numbers for `PairedTrainDataset`.

    Use with `DataLoader(dataset, batch_size=batch_size, sampler=SampleSampler(...))`: loader batch j is global
    batch `start + j`, whose samples on rank r are `batch_sample_numbers(start + j, batch_size, r, world_size)`.

    Args:
        start: index of the first batch to produce (the training iteration to resume from).
        batch_size: samples per batch on each rank.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, start: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if start < 0 or batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler arguments: start={start}, batch_size={batch_size}, rank={rank}, "
                             f"world_size={world_size}")
        self.start = int(start)
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def __iter__(self) -> Iterator[int]:
        batch = self.start
        while True:
            yield from batch_sample_numbers(batch, self.batch_size, self.rank, self.world_size)
            batch += 1

