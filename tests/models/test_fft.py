import pytest
import torch

from nafft.models import FFTResBlock
from tests.models.conftest import randomize


def test_fft_block_is_x_plus_its_frequency_branch():
    block = randomize(FFTResBlock(4))
    x = torch.randn(2, 4, 15, 22)
    spec = torch.fft.rfft2(x)
    y = torch.cat([spec.real, spec.imag], 1)
    y = block.conv2(torch.relu(block.conv1(y)))
    expected = x + torch.fft.irfft2(torch.complex(*y.chunk(2, 1)), s=(15, 22))
    torch.testing.assert_close(block(x), expected)


def test_fft_branch_is_scale_equivariant():
    # No biases and a ReLU: filtering the spectrum commutes with positive scaling, whatever the FFT normalisation.
    block = randomize(FFTResBlock(3))
    x = torch.randn(1, 3, 16, 9)
    torch.testing.assert_close(block.branch(3.0 * x), 3.0 * block.branch(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fft_runs_in_float32_under_autocast(dtype):
    block = randomize(FFTResBlock(4))
    x = torch.randn(1, 4, 13, 10)  # odd, non power-of-two sizes: half-precision FFTs would refuse them
    with torch.autocast("cpu", dtype=dtype):
        y = block.branch(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, block.branch(x))
    with torch.autocast("cpu", dtype=dtype):
        y_half = block.branch(x.to(dtype))
    assert y_half.dtype == dtype
