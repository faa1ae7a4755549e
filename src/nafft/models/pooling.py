"""Global average pooling with an optional test-time local window (TLC).

TLC, the test-time local converter (Chu et al., "Revisiting Global Statistics Aggregation for Improving Image
Restoration", ECCV 2022), replaces each global average pool by a local one whose window is the feature size seen in
training times 1.5, computed with an integral image and replicate-padded back to the feature size. The maths equals
the official NAFNetLocal with fast_imp=False. What differs: the pooled statistics are returned *unpadded* so that
the attention's per-pixel channel mixing (a 1x1 conv or ECA's 1-D conv) runs on the valid positions only, and the
replicate padding is applied after it (both are per-pixel, so the order does not change the result). That makes the
large windows that TLC uses at high resolution much cheaper than pooling, convolving and then padding.

Under tracing (ONNX export) the same local means and padding are computed without Python branches on sizes: window
sizes, counts and the replicate padding's indices are tensor operations on the input's shape (an integral image,
then gathers), so one exported graph gives the TLC output at every input size, below and above the window.
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
        if self.kernel_size is not None and torch.jit.is_tracing():
            return _traceable_local_means(x, self.kernel_size)
        if self._is_global(x):
            return x.mean((-2, -1), keepdim=True)
        h, w = x.shape[-2:]
        k1, k2 = min(h, self.kernel_size[0]), min(w, self.kernel_size[1])
        # float32 even under mixed precision; the same memory format as the features
        out = box_sums(x.float(), k1, k2)
        out /= k1 * k2
        return out.to(x.dtype)

    def multiply(self, x: torch.Tensor, stats: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """`x * expand(stats, x.shape)` without building the expanded tensor; into `x` itself when `inplace`
        (ignored while autograd records).

        The replicate padding repeats the statistics' border rows and columns, so the product splits into up to
        nine rectangles, each the features times a broadcast slice of the statistics, written into one output.
        """
        if self.kernel_size is not None and torch.jit.is_tracing():
            return x * _traceable_expand(stats, x)
        sh, sw = stats.shape[-2:]
        if torch.is_grad_enabled() and (x.requires_grad or stats.requires_grad):
            return x * self.expand(stats, x.shape)  # `out=` products do not record gradients
        if inplace and x.dtype == torch.result_type(x, stats):
            out = x
        elif sh == 1 and sw == 1:
            return x * stats
        else:
            out = torch.empty_like(x, dtype=torch.result_type(x, stats))
        h, w = x.shape[-2:]
        top, left = (h - sh) // 2, (w - sw) // 2
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


def box_sums(x: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """Sums of every k1 x k2 window of (B, C, H, W) `x`: (B, C, H - k1 + 1, W - k2 + 1), in `x`'s memory format.

    Along W, then along H; each pass sees the tensor as (N, L, I) with the summed axis L and the innermost axis I
    (W passes of NCHW tensors: I = 1; of channels_last tensors: I = C; H passes: I = the rest).
    """
    b, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        rows = _window_sums(x.permute(0, 2, 3, 1).reshape(b * h, w, c), k2)  # (B*H, C, W')
        out = _window_sums(rows.view(b, h, -1), k1)  # (B, C*W', H')
        return out.view(b, c, w - k2 + 1, h - k1 + 1).transpose(-1, -2).contiguous(memory_format=torch.channels_last)
    rows = _window_sums(x.reshape(b * c * h, w, 1), k2)  # (B*C*H, 1, W')
    out = _window_sums(rows.view(b * c, h, -1), k1)  # (B*C, W', H')
    return out.view(b, c, w - k2 + 1, h - k1 + 1).transpose(-1, -2).contiguous()


def _window_sums(a: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of every `k` consecutive entries along axis 1 of an (N, L, I) tensor, as a contiguous (N, I, L - k + 1).

    The sum of window j is the first window's sum plus the prefix sum of `a[k:] - a[:L-k]` up to j - 1: one
    reduction over the first k entries, one subtraction over the last L - k, and prefix sums taken along the
    innermost axis (the subtraction writes the differences transposed), where PyTorch's cumsum is fast; along an
    outer axis it ran 20x slower, and so did reductions over single axes of 4-D channels_last tensors.
    """
    n, length, inner = a.shape
    m = length - k
    out = torch.empty(n, inner, m + 1, dtype=a.dtype, device=a.device)
    out[:, :, 0] = a[:, :k].sum(1)
    if m:
        diff = torch.empty(n, inner, m, dtype=a.dtype, device=a.device)
        torch.sub(a[:, k:].transpose(1, 2), a[:, :m].transpose(1, 2), out=diff)
        torch.cumsum(diff, dim=-1, out=out[:, :, 1:])
        out[:, :, 1:] += out[:, :, :1]
    return out


def _traceable_local_means(x: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """`AvgPool.forward` with TLC for tracing: (B, C, H', W') local means, every size computed from `x.shape`.

    The formula of `_window_sums` (first window, then prefix sums of differences), written with slices whose bounds
    are tensors; the graph has no Gather (slow in onnxruntime) and its prefix sums run over n - k entries only.
    """
    out = x.float()
    for dim, k in ((-1, kernel_size[1]), (-2, kernel_size[0])):
        n = torch.as_tensor(out.shape[dim])
        k = torch.clamp(n, max=k)  # the window, clipped to the features
        index = (slice(None),) * (out.dim() + dim)  # everything before `dim`
        first = out[index + (slice(None, k),)].sum(dim, keepdim=True)
        steps = (out[index + (slice(k, None),)] - out[index + (slice(None, n - k),)]).cumsum(dim)
        out = torch.cat([first, first + steps], dim) / k
    return out.to(x.dtype)


def _traceable_expand(stats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`AvgPool.expand(stats, x.shape)` for tracing: the centred replicate padding, with sizes from the shapes."""
    h, w = torch.as_tensor(x.shape[-2]), torch.as_tensor(x.shape[-1])
    sh, sw = torch.as_tensor(stats.shape[-2]), torch.as_tensor(stats.shape[-1])
    top, left = torch.div(h - sh, 2, rounding_mode="floor"), torch.div(w - sw, 2, rounding_mode="floor")
    return F.pad(stats, (left, w - sw - left, top, h - sh - top), mode="replicate")
