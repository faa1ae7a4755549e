"""Test-wide settings.

The tests run tiny models, where a second intra-op thread buys little, while two OpenMP threads competing with any
other busy process (a second test worker, a loader process, a build) can make every small operation wait on a
descheduled thread: measured 20-50x slower here. One thread keeps the suite's time steady; subprocesses inherit it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip themselves on machines without a CUDA device."""
    import pytest

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
