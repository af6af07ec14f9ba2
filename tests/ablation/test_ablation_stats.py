"""Statistics of the ablation table against hand-computed values and independent references."""

from __future__ import annotations

import math

import pytest

from graphfuse.ablation.stats import (
    betainc,
    compare_to_baseline,
    mean_std,
    norm_ppf,
    paired_difference,
    t_cdf,
    t_ppf,
    welch_difference,
)


# Student's t quantiles from printed tables (e.g. NIST/SEMATECH e-Handbook, Table 1.3.6.7.2).
@pytest.mark.parametrize(
    "p, df, expected",
    [
        (0.975, 1, 12.706205),
        (0.975, 2, 4.302653),
        (0.975, 3, 3.182446),
        (0.975, 4, 2.776445),
        (0.975, 5, 2.570582),
        (0.975, 10, 2.228139),
        (0.975, 30, 2.042272),
        (0.995, 5, 4.032143),
        (0.95, 9, 1.833113),
        (0.9, 20, 1.325341),
    ],
)
def test_t_quantiles_match_tables(p, df, expected):
    assert t_ppf(p, df) == pytest.approx(expected, abs=2e-6)
    assert t_ppf(1 - p, df) == pytest.approx(-expected, abs=2e-6)  # symmetry


def test_t_quantile_limits():
    assert t_ppf(0.5, 3.7) == 0.0
    assert norm_ppf(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert t_ppf(0.975, 1e9) == pytest.approx(1.959964, abs=1e-6)
    assert t_ppf(0.975, 1000) == pytest.approx(1.962339, abs=1e-6)
    # df = 1 and 2 have closed forms (Cauchy; F(t) = 1/2 + t / (2 sqrt(2 + t^2)))
    assert t_ppf(0.9, 1) == pytest.approx(math.tan(math.pi * 0.4), rel=1e-12)
    t = t_ppf(0.9, 2)
    assert 0.5 + t / (2 * math.sqrt(2 + t * t)) == pytest.approx(0.9, rel=1e-12)


def _t_cdf_by_quadrature(t: float, df: float, n: int = 20000) -> float:
    """Independent reference: 1/2 + integral of the t density from 0 to t (Simpson, float64)."""
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    h = t / n
    total = 0.0
    for i in range(n + 1):
        x = i * h
        w = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += w * math.exp(logc - (df + 1) / 2 * math.log1p(x * x / df))
    return 0.5 + total * h / 3


@pytest.mark.parametrize("df", [1.4, 2.5, 3.23, 7.0, 17.3])
def test_t_cdf_and_quantile_for_real_df_match_quadrature(df):
    for t in (0.3, 1.0, 2.5):
        assert t_cdf(t, df) == pytest.approx(_t_cdf_by_quadrature(t, df), abs=1e-10)
    q = t_ppf(0.975, df)
    assert _t_cdf_by_quadrature(q, df) == pytest.approx(0.975, abs=1e-9)


def test_incomplete_beta_closed_forms():
    for x in (0.01, 0.3, 0.5, 0.77, 0.99):
        assert betainc(2.5, 1.0, x) == pytest.approx(x**2.5, rel=1e-12)
        assert betainc(1.0, 3.5, x) == pytest.approx(1 - (1 - x) ** 3.5, rel=1e-12)
        assert betainc(0.5, 0.5, x) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)), rel=1e-12)
    # I_0.4(2, 3) = P(Binomial(4, 0.4) >= 2) = 6*.4^2*.6^2 + 4*.4^3*.6 + .4^4
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, rel=1e-12)
    assert betainc(2, 3, 0.0) == 0.0 and betainc(2, 3, 1.0) == 1.0
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(math.sqrt(5 / 3)), 4)
    m, s, n = mean_std([0.5])
    assert (m, n) == (0.5, 1) and math.isnan(s)
    m, s, n = mean_std([])
    assert n == 0 and math.isnan(m)


def test_paired_interval_hand_computed():
    # d = [0.02, 0.01, 0.05]: mean 0.0266667, sd 0.0208167, se 0.0120185, t_{.975,2} = 4.302653
    d = paired_difference([0.80, 0.82, 0.85], [0.78, 0.81, 0.80])
    assert d.method == "paired" and d.df == 2 and d.n_variant == 3
    assert d.diff == pytest.approx(0.0266667, abs=1e-7)
    assert d.se == pytest.approx(0.0120185, abs=1e-7)
    assert d.low == pytest.approx(0.0266667 - 4.302653 * 0.0120185, abs=1e-6)  # -0.025045
    assert d.high == pytest.approx(0.0783778, abs=1e-6)
    assert d.contains_zero is True
    # d = [0.10, 0.11, 0.12]: mean 0.11, sd 0.01, se 0.0057735 -> 0.11 +- 0.0248414
    d = paired_difference([0.88, 0.92, 0.92], [0.78, 0.81, 0.80])
    assert (d.low, d.high) == (pytest.approx(0.0851586, abs=1e-6), pytest.approx(0.1348414, abs=1e-6))
    assert d.contains_zero is False


def test_welch_interval_hand_computed():
    # equal n and variances: se^2 = 1/3 + 1/3, df = 2(n-1) = 4; -2 +- 2.776445 * 0.8164966
    d = welch_difference([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    assert d.method == "welch" and d.df == pytest.approx(4.0, rel=1e-12)
    assert (d.low, d.high) == (pytest.approx(-4.266958, abs=1e-6), pytest.approx(0.266958, abs=1e-6))
    assert d.contains_zero is True
    # unequal n: s_a^2/n_a = 1.6667/4 = 0.416667, s_b^2/n_b = 4/3; se^2 = 1.75;
    # df = 1.75^2 / (0.416667^2/3 + 1.333333^2/2) = 3.0625 / 0.946759 = 3.234719
    d = welch_difference([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0])
    assert d.diff == pytest.approx(-1.5) and d.se == pytest.approx(math.sqrt(1.75))
    assert d.df == pytest.approx(3.234719, abs=1e-6)
    half = t_ppf(0.975, 3.234719) * math.sqrt(1.75)
    assert (d.low, d.high) == (pytest.approx(-1.5 - half), pytest.approx(-1.5 + half))
    assert _t_cdf_by_quadrature(half / math.sqrt(1.75), 3.234719) == pytest.approx(0.975, abs=1e-8)


def test_compare_chooses_paired_or_welch_and_handles_small_n():
    base = {0: 0.78, 1: 0.81, 2: 0.80}
    assert compare_to_baseline({0: 0.80, 1: 0.82, 2: 0.85}, base).method == "paired"
    d = compare_to_baseline({0: 0.70, 1: 0.74}, base)  # seed 2 missing -> Welch
    assert d.method == "welch" and d.n_variant == 2 and d.n_baseline == 3
    one = compare_to_baseline({0: 0.9}, {0: 0.8})
    assert one.diff == pytest.approx(0.1) and not one.defined and one.contains_zero is None
    same = compare_to_baseline({0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.7})  # constant difference
    assert (same.low, same.high) == (pytest.approx(0.1), pytest.approx(0.1)) and same.contains_zero is False
