"""The learning rate curve: linear warm-up, then cosine to eta_min exactly at the last iteration."""

import math

import pytest
import torch

from nafft.engine.schedule import Schedule, learning_rate


def test_cosine_reaches_eta_min_at_the_last_iteration():
    total, lr, eta = 101, 1e-3, 1e-7
    curve = [learning_rate(i, total, lr, "cosine", eta) for i in range(total)]
    assert curve[0] == lr
    assert curve[50] == pytest.approx((lr + eta) / 2)  # half way: cos(pi/2) = 0
    assert curve[25] == pytest.approx(eta + (lr - eta) * (1 + math.cos(math.pi / 4)) / 2)
    assert curve[-1] == pytest.approx(eta, abs=1e-15)
    assert all(a > b for a, b in zip(curve, curve[1:]))


def test_warmup_then_cosine():
    total, lr, eta, warm = 20, 2e-3, 0.0, 5
    curve = [learning_rate(i, total, lr, "cosine", eta, warm) for i in range(total)]
    assert curve[:5] == pytest.approx([lr * k / 5 for k in range(1, 6)])
    assert curve[4] == curve[5] == lr  # the last warm-up step and the first cosine step
    # cosine over the remaining 14 steps: i = 5 + 7 is half way
    assert curve[12] == pytest.approx(lr / 2)
    assert curve[-1] == pytest.approx(eta, abs=1e-18)


def test_constant_and_edges():
    assert [learning_rate(i, 4, 0.1, "constant", 0.0, 2) for i in range(4)] == pytest.approx([0.05, 0.1, 0.1, 0.1])
    assert learning_rate(0, 1, 0.1, "cosine", 0.0) == 0.1  # a one-step run uses the peak rate
    with pytest.raises(ValueError, match="outside"):
        learning_rate(4, 4, 0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule(10, 0.1, "step")


def test_apply_sets_every_param_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    sched = Schedule(10, 1e-3, "cosine", 0.0, 2)
    assert sched.apply(opt, 0) == 5e-4
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 5e-4]
