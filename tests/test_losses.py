"""Each loss against values worked out by hand."""

import math

import pytest
import torch

from nafft.engine.config import LossConfig
from nafft.losses import (
    CombinedLoss,
    charbonnier_loss,
    edge_loss,
    fft_loss,
    l1_loss,
    log_kernel,
    psnr_loss,
)


def const(value, shape=(1, 3, 4, 6)):
    return torch.full(shape, float(value))


def test_l1():
    pred = torch.tensor([0.0, 1.0, 0.5, 0.25]).reshape(1, 1, 2, 2)
    target = torch.tensor([0.5, 0.5, 0.5, 0.5]).reshape(1, 1, 2, 2)
    # |-.5| + |.5| + 0 + |-.25| = 1.25 over 4 pixels
    assert l1_loss(pred, target).item() == pytest.approx(0.3125)


def test_psnr_loss_is_minus_the_mean_psnr_per_image():
    pred = torch.zeros(2, 3, 4, 4)
    target = torch.cat([const(0.1, (1, 3, 4, 4)), const(0.01, (1, 3, 4, 4))])
    # image 0: mse 1e-2 -> 10 log10(1e-2 + 1e-8); image 1: mse 1e-4 -> 10 log10(1e-4 + 1e-8)
    expected = (10 * math.log10(1e-2 + 1e-8) + 10 * math.log10(1e-4 + 1e-8)) / 2
    assert psnr_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(-29.99978, abs=1e-4)
    # identical images: the 1e-8 inside the log caps it at -80 dB
    assert psnr_loss(target, target).item() == pytest.approx(-80.0, rel=1e-6)


def test_charbonnier():
    pred = torch.tensor([0.0, 0.003, 0.0, 0.0]).reshape(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    # sqrt(0 + 1e-6) = 1e-3 three times; sqrt(9e-6 + 1e-6) = sqrt(1e-5) once
    expected = (3 * 1e-3 + math.sqrt(1e-5)) / 4
    assert charbonnier_loss(pred, target, eps=1e-3).item() == pytest.approx(expected, rel=1e-5)


def test_fft_loss_of_a_delta_and_a_constant():
    h, w = 4, 6
    delta = torch.zeros(1, 1, h, w)
    delta[0, 0, 0, 0] = 0.5
    zero = torch.zeros_like(delta)
    # The DFT of a delta at the origin is flat: every bin is 0.5 (unnormalised transform).
    assert fft_loss(delta, zero, "modulus").item() == pytest.approx(0.5)
    # real parts 0.5, imaginary parts 0 -> the mean of the stacked magnitudes is 0.25
    assert fft_loss(delta, zero, "realimag").item() == pytest.approx(0.25)
    # A constant c: only the DC bin is non-zero, c*H*W, among H*(W//2+1) = 16 bins.
    c = 0.25
    assert fft_loss(const(c, (1, 1, h, w)), zero, "modulus").item() == pytest.approx(c * h * w / (h * (w // 2 + 1)))
    assert fft_loss(const(c, (1, 1, h, w)), zero, "modulus", norm="ortho").item() == pytest.approx(
        c * math.sqrt(h * w) / 16
    )
    # A shifted delta has the same modulus spectrum but a non-trivial phase.
    shifted = torch.roll(delta, shifts=(1, 2), dims=(2, 3))
    assert fft_loss(shifted, zero, "modulus").item() == pytest.approx(0.5, rel=1e-6)


def test_fft_loss_runs_in_float32_under_autocast_and_has_finite_gradients_at_zero():
    pred = torch.rand(2, 3, 10, 14, requires_grad=True)
    target = torch.rand(2, 3, 10, 14)
    expected = fft_loss(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fft_loss(pred.bfloat16(), target)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-2)
    same = pred.detach().clone().requires_grad_(True)
    fft_loss(same, same.detach()).backward()
    assert torch.isfinite(same.grad).all() and same.grad.abs().max() == 0


def test_log_kernel_values():
    k = log_kernel(1.0).double()
    assert k.shape == (7, 7)
    assert k.sum().abs().item() < 1e-6
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.t())
    # Before the zero-sum shift: LoG(0, 0) = -1 / (pi sigma^4); LoG(1, 0) = -(1 - 1/2) e^(-1/2) / pi.
    raw = {}
    for y in range(-3, 4):
        for x in range(-3, 4):
            q = (x * x + y * y) / 2
            raw[(y, x)] = -(1 - q) * math.exp(-q) / math.pi
    shift = sum(raw.values()) / 49
    assert k[3, 3].item() == pytest.approx(-1 / math.pi - shift, rel=1e-6)
    assert k[3, 4].item() == pytest.approx(-0.5 * math.exp(-0.5) / math.pi - shift, rel=1e-6)
    assert log_kernel(2.0).shape == (13, 13)


def test_edge_loss_of_a_constant_and_a_delta():
    zero = torch.zeros(1, 3, 15, 15)
    # flat differences have no edges (zero-sum kernel, replicate padding)
    assert edge_loss(const(0.3, (1, 3, 15, 15)), zero).item() == pytest.approx(0.0, abs=1e-7)
    delta = zero.clone()
    delta[0, 1, 7, 7] = 1.0  # one channel, far enough from the border for the 7x7 kernel
    k = log_kernel(1.0)
    expected = k.abs().sum().item() / (3 * 15 * 15)
    assert edge_loss(delta, zero).item() == pytest.approx(expected, rel=1e-6)


def test_combined_loss_is_the_weighted_sum_and_logs_each_term():
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 16, 12, requires_grad=True)
    target = torch.rand(2, 3, 16, 12)
    cfg = LossConfig(l1=1.0, psnr=0.5, charbonnier=2.0, fft=0.01, edge=0.05, fft_mode="realimag")
    loss = CombinedLoss.from_config(cfg)
    total, parts = loss(pred, target)
    assert list(parts) == ["l1", "psnr", "charbonnier", "fft", "edge"]
    expected = (
        l1_loss(pred, target)
        + 0.5 * psnr_loss(pred, target)
        + 2.0 * charbonnier_loss(pred, target)
        + 0.01 * fft_loss(pred, target, "realimag")
        + 0.05 * edge_loss(pred, target)
    )
    torch.testing.assert_close(total, expected)
    assert parts["fft"].item() == pytest.approx(fft_loss(pred, target, "realimag").item())
    assert not any(p.requires_grad for p in parts.values())
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # zero weights are dropped
    only_l1 = CombinedLoss({"l1": 1.0, "psnr": 0.0})
    assert list(only_l1(pred, target)[1]) == ["l1"]
    with pytest.raises(ValueError, match="unknown loss"):
        CombinedLoss({"ssim": 1.0})


def test_combined_loss_in_float32_under_bf16_autocast():
    pred = torch.rand(1, 3, 12, 12)
    target = torch.rand(1, 3, 12, 12)
    loss = CombinedLoss({"psnr": 1.0, "fft": 0.05})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, parts = loss(pred.bfloat16(), target)
    assert total.dtype == torch.float32 and all(p.dtype == torch.float32 for p in parts.values())
