"""Figures for the demo and ablation reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nafft.atomic_files import atomic_write


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


def plot_differences(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]],
    tests: Mapping[str, Mapping[str, object]],
    path: str | Path,
    reference: str,
    level: float = 0.95,
) -> Path:
    """The paired comparison in two panels: left, each variant's validation PSNR minus the reference's on the same
    seed against iteration (mean over seeds, min-max band); right, its test PSNR differences, one dot per seed, the
    mean and the `level` interval as a bar (`tests[name]`: `stats.paired_interval` plus `differences`)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(tests), 4) + 2.4), dpi=120,
                                      gridspec_kw={"width_ratios": [1.3, 1]})
    colors = {}
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        iters = sorted(set.intersection(*(set(i for i, _ in r) for r in runs)))
        values = np.array([[dict(r)[i] for i in iters] for r in runs])
        (line,) = left.plot(iters, values.mean(0), marker="o", markersize=3, label=name)
        colors[name] = line.get_color()
        if len(runs) > 1:
            left.fill_between(iters, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    left.axhline(0, color="gray", linewidth=1)
    left.set_xlabel("iteration")
    left.set_ylabel(f"validation PSNR - {reference} (dB)")
    left.set_title("paired difference during training")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    names = list(tests)
    for y, name in enumerate(names):
        paired = tests[name]
        color = colors.get(name, "C0")
        right.scatter(paired["differences"], [y] * len(paired["differences"]), color=color, s=14, alpha=0.7)
        if paired.get("low") is not None:
            right.plot([paired["low"], paired["high"]], [y, y], color=color, linewidth=2.5)
        right.plot([paired["mean"]], [y], marker="|", markersize=14, color="black")
    right.axvline(0, color="gray", linewidth=1)
    right.set_yticks(range(len(names)), names, fontsize=8)
    right.set_ylim(max(len(names), 3) - 0.5, -0.5)  # first variant on top
    right.set_xlabel(f"test PSNR - {reference} (dB)")
    right.set_title(f"per seed (dots), mean and {round(100 * level)}% interval")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png"))
    plt.close(fig)
    return path
