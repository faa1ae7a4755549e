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
        # Integral image, in float32 even under mixed precision. The window sum at (i, j) is
        # S[i+k1-1, j+k2-1] - S[i-1, j+k2-1] - S[i+k1-1, j-1] + S[i-1, j-1] with S[-1, :] = S[:, -1] = 0; only the
        # small sliced terms are zero-padded, never the whole integral image.
        s = x.float().cumsum(dim=-1).cumsum_(dim=-2)
        whole = s[:, :, k1 - 1 :, k2 - 1 :]  # (B, C, H-k1+1, W-k2+1)
        corner = F.pad(s[:, :, : h - k1, : w - k2], (1, 0, 1, 0))
        top = F.pad(s[:, :, : h - k1, k2 - 1 :], (0, 0, 1, 0))
        left = F.pad(s[:, :, k1 - 1 :, : w - k2], (1, 0, 0, 0))
        out = (whole + corner - top - left) / (k1 * k2)
        return out.to(x.dtype)

    def expand(self, stats: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        """Replicate-pad local statistics to `size` (H, W), centred as in TLC; global ones broadcast as they are."""
        h, w = size[-2], size[-1]
        sh, sw = stats.shape[-2:]
        if sh == 1 and sw == 1:  # global statistics (a 1x1 local result only arises when the window covers all)
            return stats
        pad = ((w - sw) // 2, (w - sw + 1) // 2, (h - sh) // 2, (h - sh + 1) // 2)
        return F.pad(stats, pad, mode="replicate")
