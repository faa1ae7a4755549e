"""Figures for the demo and ablation reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nafft.fileio import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]],
    path: str | Path,
    title: str,
    baseline: float | None = None,
    baseline_label: str = "blurry input",
) -> Path:
    """Validation PSNR against iteration, one line per name (the mean over its runs, with the min-max band when
    there are several runs); `baseline` draws a horizontal reference line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        iters = sorted(set.intersection(*(set(i for i, _ in r) for r in runs)))
        if not iters:
            continue
        values = np.array([[dict(r)[i] for i in iters] for r in runs])
        (line,) = ax.plot(iters, values.mean(0), marker="o", markersize=3, label=name)
        if len(runs) > 1:
            ax.fill_between(iters, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle="--", linewidth=1, label=baseline_label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png"))
    plt.close(fig)
    return path
