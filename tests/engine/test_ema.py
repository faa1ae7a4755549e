"""EMA maths: shadow <- d_n * shadow + (1 - d_n) * weight with d_n = min(decay, (1 + n) / (10 + n))."""

import pytest
import torch
from torch import nn

from nafft.engine.ema import EMA


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def test_ema_updates_by_hand():
    net = Net()
    ema = EMA(net, decay=0.5)
    assert ema.current_decay() == pytest.approx(2 / 11)  # warm-up: (1 + 1) / (10 + 1)
    with torch.no_grad():
        net.w.fill_(1.0)
        net.count.fill_(7)
    ema.update(net)
    # d = 2/11: 2/11 * 0 + 9/11 * 1
    torch.testing.assert_close(ema.module.w, torch.full((3,), 9 / 11))
    assert ema.module.count.item() == 7  # integer buffers are copied
    with torch.no_grad():
        net.w.fill_(3.0)
    ema.update(net)
    d = 3 / 12
    torch.testing.assert_close(ema.module.w, torch.full((3,), d * 9 / 11 + (1 - d) * 3))
    for _ in range(20):
        ema.update(net)
    assert ema.current_decay() == 0.5  # warm-up over: plain decay
    assert not ema.module.w.requires_grad
    # the raw weights are untouched
    assert torch.equal(net.w.detach(), torch.full((3,), 3.0))


def test_ema_state_round_trip():
    net = Net()
    ema = EMA(net, 0.9)
    with torch.no_grad():
        net.w.fill_(2.0)
    ema.update(net)
    other = EMA(Net(), 0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.updates == 1
    assert torch.equal(other.module.w, ema.module.w)
    with pytest.raises(ValueError):
        EMA(net, 1.0)
