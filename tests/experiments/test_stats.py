import math

import pytest

from nafft.experiments.stats import paired_differences, paired_interval, t_cdf_two_sided, t_quantile

# Student t quantiles t(0.975, df), from published tables (R: qt(0.975, df)).
T975 = {1: 12.7062047362, 2: 4.30265272975, 3: 3.18244630528, 4: 2.7764451052, 5: 2.57058183564,
        9: 2.26215716280, 10: 2.22813885199, 29: 2.04522964213, 30: 2.04227245630, 120: 1.97993040505}


@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_the_tables(df):
    assert t_quantile(0.95, df) == pytest.approx(T975[df], rel=1e-9)
    assert t_cdf_two_sided(T975[df], df) == pytest.approx(0.95, abs=1e-9)


def test_t_cdf_closed_forms():
    # df 1 is the Cauchy distribution, df 2 has P(|T| < t) = t / sqrt(2 + t^2)
    for t in (0.3, 1.0, 4.0):
        assert t_cdf_two_sided(t, 1) == pytest.approx(2 / math.pi * math.atan(t), abs=1e-14)
        assert t_cdf_two_sided(t, 2) == pytest.approx(t / math.sqrt(2 + t * t), abs=1e-14)
    assert t_quantile(0.90, 1) == pytest.approx(6.31375151468, rel=1e-9)  # t(0.95, 1)
    with pytest.raises(ValueError):
        t_cdf_two_sided(1.0, 0)


def test_interval_on_known_numbers():
    # mean 0.2, s = 0.1, half width t(0.975, 2) * 0.1 / sqrt(3) = 0.248414: the interval contains 0
    wide = paired_interval([0.1, 0.2, 0.3])
    assert (wide["n"], wide["mean"], wide["std"]) == (3, pytest.approx(0.2), pytest.approx(0.1))
    assert wide["t"] == pytest.approx(4.30265272975)
    assert (wide["low"], wide["high"]) == (pytest.approx(-0.0484138, abs=1e-6), pytest.approx(0.4484138, abs=1e-6))
    assert not wide["resolved"]
    # the same mean with s = 0.02: [0.07032, 0.16968] excludes 0
    narrow = paired_interval([0.10, 0.12, 0.14])
    assert (narrow["low"], narrow["high"]) == (pytest.approx(0.0703172, abs=1e-6), pytest.approx(0.1696828, abs=1e-6))
    assert narrow["resolved"]
    # a resolved loss, four seeds: mean -0.05, s = 0.0081650, t(0.975, 3) = 3.182446 -> half width 0.0129920
    worse = paired_interval([-0.04, -0.06, -0.05, -0.05])
    assert worse["std"] == pytest.approx(0.00816497, abs=1e-7)
    assert (worse["low"], worse["high"]) == (pytest.approx(-0.062992, abs=1e-6), pytest.approx(-0.037008, abs=1e-6))
    assert worse["resolved"] and worse["high"] < 0
    # one seed: a difference, no interval, never resolved
    single = paired_interval([0.3])
    assert single["mean"] == 0.3 and single["low"] is None and not single["resolved"]


def test_differences_pair_runs_by_seed_not_by_position():
    reference = [{"seed": 42, "psnr": 27.0}, {"seed": 43, "psnr": 27.5}, {"seed": 44, "psnr": 26.0}]
    variant = [{"seed": 44, "psnr": 26.1}, {"seed": 42, "psnr": 27.3}, {"seed": 45, "psnr": 30.0}]
    seeds, diffs = paired_differences(variant, reference, "psnr")
    assert seeds == [44, 42]  # seed 45 has no reference run, seed 43 no variant run
    assert diffs == [pytest.approx(0.1), pytest.approx(0.3)]
