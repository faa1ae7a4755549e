import pytest
import torch
import torch.nn.functional as F

from nafft.models.pooling import AvgPool, _window_sums, box_sums


def naive_window_sums(a: torch.Tensor, k: int) -> torch.Tensor:
    n = a.shape[1]
    return torch.stack([a[:, j : j + k].sum(1) for j in range(n - k + 1)], dim=-1)  # (N, I, n - k + 1)


@pytest.mark.parametrize("n,k", [(9, 9), (9, 1), (9, 3), (9, 4), (9, 5), (9, 8), (10, 5), (10, 6)])
@pytest.mark.parametrize("inner", [1, 3])
def test_window_sums_equal_explicit_window_sums(n, k, inner):
    a = torch.rand(4, n, inner, dtype=torch.float64)
    got = _window_sums(a, k)
    assert got.shape == (4, inner, n - k + 1) and got.is_contiguous()
    torch.testing.assert_close(got, naive_window_sums(a, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size,kernel", [((13, 17), (6, 11)), ((16, 16), (4, 12)), ((9, 20), (9, 5)), ((7, 5), (7, 5))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_box_sums_keep_the_memory_format(size, kernel, channels_last):
    x = torch.rand(2, 5, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = box_sums(x, *kernel)
    want = F.avg_pool2d(x, kernel, stride=1) * (kernel[0] * kernel[1])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("size,kernel", [((13, 17), (6, 11)), ((16, 16), (4, 12)), ((9, 20), (9, 5))])
def test_local_pooling_equals_avg_pool2d_on_the_valid_positions(size, kernel):
    x = torch.rand(1, 4, *size)  # the pooling sums in float32
    pool = AvgPool()
    pool.kernel_size = kernel
    torch.testing.assert_close(pool(x), F.avg_pool2d(x, kernel, stride=1), rtol=0, atol=2e-6)


@pytest.mark.parametrize("stats_size", [(1, 1), (5, 8), (12, 3), (12, 16), (1, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_multiply_equals_the_product_with_the_expanded_statistics(stats_size, channels_last):
    x = torch.rand(2, 3, 12, 16)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    stats = torch.rand(2, 3, *stats_size)
    pool = AvgPool()
    with torch.no_grad():
        got = pool.multiply(x, stats)
    want = x * pool.expand(stats, x.shape)
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    with torch.no_grad():
        inplace = pool.multiply(x, stats, inplace=True)
    assert inplace.data_ptr() == x.data_ptr() and torch.equal(inplace, want)


def test_multiply_keeps_gradients():
    x = torch.rand(1, 2, 8, 8, requires_grad=True)
    stats = torch.rand(1, 2, 3, 5, requires_grad=True)
    AvgPool().multiply(x, stats).sum().backward()
    # each statistic is used once per pixel it covers after replicate padding: border ones many times
    assert x.grad is not None and stats.grad is not None
    assert stats.grad[0, 0, 0, 0] > stats.grad[0, 0, 1, 1]
