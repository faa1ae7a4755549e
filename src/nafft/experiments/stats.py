"""Paired comparisons of an ablation: per seed, a variant's score minus the reference's (both trained from the
same initialisation on the same batches), and the Student-t interval of their mean.

With n seeds the differences d_1..d_n give the mean, their sample standard deviation s (n - 1 in the denominator)
and the 95% interval `mean +- t(0.975, n - 1) * s / sqrt(n)`. A difference is called resolved only where that
interval excludes 0. Student's t quantile is computed here (exact for integer degrees of freedom, no SciPy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def t_cdf_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's T with `df` (integer >= 1) degrees of freedom.

    The finite series of Abramowitz & Stegun 26.7.3/26.7.4 in theta = atan(t / sqrt(df)): for odd df
    `(2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))`, for even df
    `sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)`, the sums running to cos^(df-3) and cos^(df-2).
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):  # terms cos^2k with coefficients 2*4*..*2k / (3*5*..*(2k+1))
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return (2 / math.pi) * (theta + s * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):  # terms cos^2k with coefficients 1*3*..*(2k-1) / (2*4*..*2k)
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| < t) = `level` (two-sided; 0.95 gives t(0.975, df): 12.706 for df 1, 4.303 for df 2)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    low, high = 0.0, 1.0
    while t_cdf_two_sided(high, df) < level:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf_two_sided(mid, df) < level:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


def paired_interval(differences: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, spread and the Student-t interval of paired differences.

    Returns:
        `n`, `mean`, `std` (sample standard deviation: the seed-to-seed spread of the differences), `t` and the
        interval `low`, `high` (None with fewer than 2 differences), and `resolved`: the interval excludes 0.
    """
    n = len(differences)
    if n == 0:
        raise ValueError("no paired differences")
    mean = statistics.fmean(differences)
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "level": level, "t": None, "low": None, "high": None,
                "resolved": False}
    std = statistics.stdev(differences)
    t = t_quantile(level, n - 1)
    half = t * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "level": level, "t": t, "low": mean - half, "high": mean + half,
            "resolved": mean - half > 0 or mean + half < 0}


def paired_differences(runs: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]],
                       key: str) -> tuple[list[int], list[float]]:
    """The seeds both lists of run records share (in the order of `runs`) and `run[key] - reference[key]` on each."""
    by_seed = {r["seed"]: r for r in reference}
    seeds = [r["seed"] for r in runs if r["seed"] in by_seed]
    diffs = [r[key] - by_seed[r["seed"]][key] for r in runs if r["seed"] in by_seed]
    return seeds, diffs
