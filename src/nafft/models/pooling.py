"""Global average pooling with an optional test-time local window (TLC).

TLC, the test-time local converter (Chu et al., "Revisiting Global Statistics Aggregation for Improving Image
Restoration", ECCV 2022), replaces each global average pool by a local one whose window is the feature size seen in
training times 1.5, computed with an integral image and replicate-padded back to the feature size. The maths equals
the official NAFNetLocal with fast_imp=False. What differs: the pooled statistics are returned *unpadded* so that
the attention's per-pixel channel mixing (a 1x1 conv or ECA's 1-D conv) runs on the valid positions only, and the
replicate padding is applied after it (both are per-pixel, so the order does not change the result). That makes the
large windows that TLC uses at high resolution much cheaper than pooling, convolving and then padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AvgPool(nn.Module):
    """Average pooling for channel attention: global by default, local when `kernel_size` is set.

    `forward` returns the pooled statistics: (B, C, 1, 1) for global pooling, or (B, C, H - k1 + 1, W - k2 + 1)
    local means; `expand` turns the (per-pixel transformed) statistics back into something that broadcasts against
    the (B, C, H, W) features.
    """

    def __init__(self) -> None:
        super().__init__()
        self.kernel_size: tuple[int, int] | None = None

    def extra_repr(self) -> str:
        return "global" if self.kernel_size is None else f"local kernel_size={self.kernel_size}"

    def _is_global(self, x: torch.Tensor) -> bool:
        k = self.kernel_size
        return k is None or (k[0] >= x.shape[-2] and k[1] >= x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._is_global(x):
            return x.mean((-2, -1), keepdim=True)
        h, w = x.shape[-2:]
        k1, k2 = min(h, self.kernel_size[0]), min(w, self.kernel_size[1])
        # Box sums in float32 even under mixed precision, one axis at a time (W first, which shrinks the tensor
        # before the pass along H); no padded copies of the features.
        out = _box_sums(_box_sums(x.float(), k2, -1), k1, -2)
        out /= k1 * k2
        return out.to(x.dtype)

    def multiply(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """`x * expand(stats, x.shape)` without building the expanded tensor.

        The replicate padding repeats the statistics' border rows and columns, so the product splits into up to
        nine rectangles, each the features times a broadcast slice of the statistics, written into one output.
        """
        sh, sw = stats.shape[-2:]
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or stats.requires_grad)
        if (sh == 1 and sw == 1) or needs_grad:  # `out=` products do not record gradients
            return x * self.expand(stats, x.shape)
        h, w = x.shape[-2:]
        top, left = (h - sh) // 2, (w - sw) // 2
        out = torch.empty_like(x, dtype=torch.result_type(x, stats))
        rows = ((0, top, slice(0, 1)), (top, top + sh, slice(None)), (top + sh, h, slice(sh - 1, sh)))
        cols = ((0, left, slice(0, 1)), (left, left + sw, slice(None)), (left + sw, w, slice(sw - 1, sw)))
        for r0, r1, rs in rows:
            for c0, c1, cs in cols:
                if r1 > r0 and c1 > c0:
                    torch.mul(x[..., r0:r1, c0:c1], stats[..., rs, cs], out=out[..., r0:r1, c0:c1])
        return out

    def expand(self, stats: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        """Replicate-pad local statistics to `size` (H, W), centred as in TLC; global ones broadcast as they are."""
        h, w = size[-2], size[-1]
        sh, sw = stats.shape[-2:]
        if sh == 1 and sw == 1:  # global statistics (a 1x1 local result only arises when the window covers all)
            return stats
        pad = ((w - sw) // 2, (w - sw + 1) // 2, (h - sh) // 2, (h - sh + 1) // 2)
        return F.pad(stats, pad, mode="replicate")


def _box_sums(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of every window of `k` consecutive elements along `dim` (length n - k + 1), from prefix sums.

    For windows longer than half the axis (TLC's usual case) the sum at j is the whole sum minus the uncovered head
    `x[:j]` and tail `x[j+k:]`, which needs prefix sums over 2 (n - k) elements only; otherwise S[j+k-1] - S[j-1].
    """
    n = x.shape[dim]
    m = n - k  # the window takes m + 1 positions
    if m == 0:
        return x.sum(dim, keepdim=True)
    if 2 * k > n:
        out = x.sum(dim, keepdim=True).expand_as(x.narrow(dim, 0, m + 1)).clone()
        out.narrow(dim, 1, m).sub_(x.narrow(dim, 0, m).cumsum(dim))  # head: x[:j] for j = 1..m
        out.narrow(dim, 0, m).sub_(x.narrow(dim, k, m).flip(dim).cumsum(dim).flip(dim))  # tail: x[j+k:], j < m
        return out
    s = x.cumsum(dim)
    out = s.narrow(dim, k - 1, m + 1).clone()
    out.narrow(dim, 1, m).sub_(s.narrow(dim, 0, m))
    return out
