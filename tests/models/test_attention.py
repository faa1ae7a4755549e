import pytest
import torch
import torch.nn.functional as F

from nafft.models import eca_kernel_size
from nafft.models.attention import EfficientChannelAttention, SimplifiedChannelAttention


def test_eca_kernel_sizes_follow_eca_net():
    assert [eca_kernel_size(c) for c in (32, 64, 128, 256, 512)] == [3, 3, 5, 5, 5]
    assert [EfficientChannelAttention(c).conv.kernel_size[0] for c in (32, 64, 128, 256, 512)] == [3, 3, 5, 5, 5]


def test_eca_is_a_1d_conv_across_channels_not_a_dense_layer():
    eca = EfficientChannelAttention(128)
    assert eca.conv.weight.shape == (1, 1, 5)
    assert sum(p.numel() for p in eca.parameters()) == 5


def _spatially_constant(v: torch.Tensor, h: int = 3, w: int = 4) -> torch.Tensor:
    return v.view(1, -1, 1, 1).expand(1, v.numel(), h, w).clone()


def test_eca_only_mixes_neighbouring_channels():
    torch.manual_seed(0)
    eca = EfficientChannelAttention(128)  # k = 5: each channel sees itself and two neighbours on each side
    with torch.no_grad():
        eca.conv.weight.copy_(torch.tensor([[[0.3, -0.7, 1.1, 0.5, -0.9]]]))
    v = torch.rand(128) + 0.5
    base = eca(_spatially_constant(v))
    for i in (0, 40, 127):
        bumped = v.clone()
        bumped[i] += 1.0
        changed = (eca(_spatially_constant(bumped)) - base).abs().amax(dim=(0, 2, 3)) > 0
        expected = torch.zeros(128, dtype=torch.bool)
        expected[max(0, i - 2) : i + 3] = True
        assert torch.equal(changed, expected), i


@pytest.mark.parametrize("cls", [SimplifiedChannelAttention, EfficientChannelAttention])
def test_attention_multiplies_the_features(cls):
    # x * att(x) with a linear att and no gate is homogeneous of degree 2 (the seed's `x = att(x)` is degree 1).
    torch.manual_seed(0)
    module = cls(16)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        if isinstance(module, SimplifiedChannelAttention):
            module._modules["1"].bias.zero_()
    x = torch.randn(2, 16, 5, 6)
    torch.testing.assert_close(module(2 * x), 4 * module(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(module(torch.zeros_like(x)), torch.zeros_like(x))


def test_eca_equals_the_textbook_formula():
    torch.manual_seed(1)
    eca = EfficientChannelAttention(64, gate="sigmoid")
    x = torch.randn(2, 64, 7, 5)
    pooled = x.mean((2, 3))  # (B, C)
    att = F.conv1d(pooled.unsqueeze(1), eca.conv.weight, padding=1).squeeze(1)  # k = 3
    torch.testing.assert_close(eca(x), x * torch.sigmoid(att)[:, :, None, None])


@pytest.mark.parametrize("cls", [SimplifiedChannelAttention, EfficientChannelAttention])
def test_local_pooling_mixes_channels_per_pixel(cls):
    torch.manual_seed(2)
    module = cls(32)
    x = torch.randn(1, 32, 12, 15)
    module.pool.kernel_size = (5, 6)
    stats = F.avg_pool2d(x, (5, 6), stride=1)  # (1, 32, 8, 10), the valid local means
    if cls is EfficientChannelAttention:
        per_pixel = stats.permute(0, 2, 3, 1).reshape(-1, 1, 32)
        att = F.conv1d(per_pixel, module.conv.weight, padding=1).view(1, 8, 10, 32).permute(0, 3, 1, 2)
    else:
        att = module._modules["1"](stats)
    att = F.pad(att, (2, 3, 2, 2), mode="replicate")  # centred, as TLC pads
    torch.testing.assert_close(module(x), x * att, atol=1e-5, rtol=1e-5)
