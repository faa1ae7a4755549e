import torch
import torch.nn.functional as F

from nafft.models import DOConv2d


def test_doconv_at_init_equals_a_plain_conv_with_kernel_w():
    conv = DOConv2d(6, 6, 3, padding=1, groups=6)
    x = torch.randn(2, 6, 9, 11)
    expected = F.conv2d(x, conv.W.view(6, 1, 3, 3), conv.bias, padding=1, groups=6)
    torch.testing.assert_close(conv(x), expected)


def test_composed_kernel_is_the_do_conv_product():
    # DoW[o, i, s] = sum_d (D + I)[i, s, d] * W[o, i, d] for a depthwise layer (out = in = groups).
    torch.manual_seed(0)
    conv = DOConv2d(4, 4, 3, groups=4)
    with torch.no_grad():
        conv.D.normal_()
    d = conv.D + torch.eye(9)
    w = conv.W.view(4, 9)
    expected = torch.stack([d[c] @ w[c] for c in range(4)]).view(4, 1, 3, 3)
    torch.testing.assert_close(conv.composed_weight(), expected)


def test_fold_is_exact_for_dense_grouped_and_depthwise_layers():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 10, 13)
    for cin, cout, groups, d_mul in [(8, 6, 1, None), (8, 4, 2, None), (8, 8, 8, None), (8, 16, 8, 12)]:
        conv = DOConv2d(cin, cout, 3, padding=1, groups=groups, d_mul=d_mul)
        with torch.no_grad():
            conv.D.normal_()
        folded = conv.fold()
        assert isinstance(folded, torch.nn.Conv2d) and folded.weight.shape == (cout, cin // groups, 3, 3)
        torch.testing.assert_close(folded(x), conv(x), atol=1e-5, rtol=1e-5)


def test_a_1x1_doconv_has_no_d():
    conv = DOConv2d(4, 4, 1)
    assert conv.D is None
    assert [n for n, _ in conv.named_parameters()] == ["W", "bias"]
