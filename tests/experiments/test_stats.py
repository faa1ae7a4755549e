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


def _run(name, seed, psnr):
    from pathlib import Path

    from nafft.experiments.runs import RunResult

    summary = {"psnr": psnr, "ssim": 0.8, "ssim3d": 0.8, "improved_images": 3, "seconds_per_image": 0.1,
               "input_psnr": 25.0, "input_ssim": 0.7, "images": 4, "cpu_seconds": 10.0}
    return RunResult(name, seed, Path(f"runs/{name}/seed{seed}"), Path("last.safetensors"), 100, 1000, 10**9,
                     summary, [], 60.0, 50.0)


def test_the_summary_pairs_by_seed_and_the_report_says_what_is_resolved(tmp_path):
    from nafft.experiments.ablate import format_table, render_markdown, summarize, table_rows

    psnr = {"ref": [27.00, 27.30, 26.90], "up": [27.10, 27.42, 27.04], "noisy": [27.20, 27.10, 26.95]}
    results = {name: [_run(name, 42 + k, v) for k, v in enumerate(values)] for name, values in psnr.items()}
    summary = summarize(results, {n: n for n in psnr}, {n: n for n in psnr}, shared={n: 1.0 for n in psnr})
    summary.update(iterations=100, seeds=[42, 43, 44], train=["t"], test=["x"], machine="m", paired=True)
    up, noisy = summary["rows"][1]["paired_psnr"], summary["rows"][2]["paired_psnr"]
    # up: differences 0.10, 0.12, 0.14 -> [0.0703, 0.1697], resolved; noisy: 0.20, -0.20, 0.05 -> not resolved
    assert up["differences"] == pytest.approx([0.10, 0.12, 0.14]) and up["resolved"]
    assert (up["low"], up["high"]) == (pytest.approx(0.0703172, abs=1e-6), pytest.approx(0.1696828, abs=1e-6))
    assert noisy["differences"] == pytest.approx([0.20, -0.20, 0.05]) and not noisy["resolved"]
    cells = {row["model"]: row for row in table_rows(summary)}
    assert cells["up"]["resolved"] == "yes: better" and cells["up"]["95% interval"] == "[+0.070, +0.170]"
    assert cells["noisy"]["resolved"] == "no" and cells["ref"]["delta PSNR (dB)"] == "(reference)"
    # up minus noisy, paired: -0.10, +0.32, +0.09
    (pair,) = [p for p in summary["pairwise_psnr"] if (p["a"], p["b"]) == ("up", "noisy")]
    assert pair["differences"] == pytest.approx([-0.10, 0.32, 0.09])
    assert summary["cpu_hours"] == pytest.approx(9 * 60 / 3600)  # 9 runs x (50 s training + 10 s evaluation)
    md = render_markdown(summary, "Ablation", tmp_path / "c.png", [], tmp_path)
    assert "| `up` | +0.100 | +0.120 | +0.140 | +0.120 | 0.020 |" in md  # per-seed differences and their spread
    assert "| `ref` | +0.120* | +0.017 |" in md and "| `up` |  | -0.103 |" in md  # column minus row
    assert "yes: better" in format_table(summary)
