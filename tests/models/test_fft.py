import pytest
import torch

from nafft.models import FFTResBlock
from tests.models.conftest import randomize


def straightforward_branch(block: FFTResBlock, x: torch.Tensor) -> torch.Tensor:
    """The block's formula written plainly: [Re, Im] concatenated, conv1, ReLU, conv2, irfft2 (NCHW)."""
    spec = torch.fft.rfft2(x.contiguous())
    y = torch.cat([spec.real, spec.imag], 1)
    y = block.conv2(torch.relu(block.conv1(y)))
    return torch.fft.irfft2(torch.complex(*y.chunk(2, 1)), s=x.shape[-2:])


def test_fft_block_is_x_plus_its_frequency_branch():
    block = randomize(FFTResBlock(4))
    x = torch.randn(2, 4, 15, 22)
    torch.testing.assert_close(block(x), x + straightforward_branch(block, x))


FORMATS = [torch.contiguous_format, torch.channels_last]
SIZES = [(15, 22), (13, 9), (1, 7), (16, 16)]  # odd and even heights and widths, a single row


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("memory_format", FORMATS, ids=["nchw", "channels_last"])
def test_fft_branch_equals_the_formula_in_both_formats(memory_format, size):
    block = randomize(FFTResBlock(5))
    x = torch.randn(2, 5, *size).contiguous(memory_format=memory_format)
    for grad_mode in (torch.inference_mode, torch.no_grad, torch.enable_grad):  # the weight cache's modes too
        with grad_mode():
            out = block.branch(x)
            torch.testing.assert_close(out, straightforward_branch(block, x), atol=1e-5, rtol=1e-5)
        assert out.is_contiguous(memory_format=memory_format)
    assert block(x).is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("memory_format", FORMATS, ids=["nchw", "channels_last"])
def test_fft_branch_gradients_equal_the_formulas(memory_format):
    block = randomize(FFTResBlock(3))
    x = torch.randn(2, 3, 11, 14).contiguous(memory_format=memory_format).requires_grad_()
    weight = torch.randn(2, 3, 11, 14)
    grads = []
    for fn in (block, lambda t: t + straightforward_branch(block, t)):
        block.zero_grad()
        x.grad = None
        (fn(x) * weight).sum().backward()
        grads.append([x.grad.clone(), block.conv1.weight.grad.clone(), block.conv2.weight.grad.clone()])
    for ours, plain in zip(*grads):
        torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)


def test_fft_branch_sees_weight_changes_after_inference():
    # Without autograd the reordered weights are cached; an in-place update (an optimizer step, load_state_dict)
    # and a training step after inference_mode must both see the current weights.
    block = randomize(FFTResBlock(4))
    x = torch.randn(1, 4, 12, 10).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        block.branch(x)
    with torch.no_grad():
        block.conv2.weight.mul_(-0.5)
        torch.testing.assert_close(block.branch(x), straightforward_branch(block, x), atol=1e-5, rtol=1e-5)
    block.load_state_dict(randomize(FFTResBlock(4), seed=1).state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(block.branch(x), straightforward_branch(block, x), atol=1e-5, rtol=1e-5)
    block.branch(x.requires_grad_()).sum().backward()  # no inference tensor reaches autograd
    assert block.conv1.weight.grad is not None


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
