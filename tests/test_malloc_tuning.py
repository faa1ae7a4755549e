import sys

import pytest

from nafft.malloc_tuning import tune_malloc


def test_tune_malloc_can_be_turned_off():
    assert tune_malloc({"NAFFT_MALLOPT": "0"}) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_applies_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert tune_malloc({}) is True
