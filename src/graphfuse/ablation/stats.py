"""Statistics of an ablation table: mean and spread over seeds, and the difference of a
variant to the baseline with a 95% confidence interval.

* **Paired** (the variant and the baseline finished the same seeds): the per-seed
  differences ``d_k = variant_k - baseline_k`` share the seed's data order and
  initialisation, so the interval is ``mean(d) +- t_{1-alpha/2, n-1} * sd(d) / sqrt(n)``
  (Student's paired t interval).
* **Welch** (the seed sets differ, e.g. a run failed): ``mean(a) - mean(b) +-
  t_{1-alpha/2, nu} * sqrt(s_a^2/n_a + s_b^2/n_b)`` with the Welch-Satterthwaite degrees
  of freedom ``nu = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))``
  (Welch 1947, Biometrika 34:28-35).

SciPy is not a dependency, so Student's t distribution is computed here from the
regularised incomplete beta function, ``P(T > t) = I_{nu/(nu+t^2)}(nu/2, 1/2) / 2``, evaluated
with its continued fraction (Abramowitz & Stegun 26.5.8, 26.7.1) by the modified Lentz
method; the quantile is found by bisection on that tail, which is monotone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

__all__ = [
    "betainc",
    "t_sf",
    "t_cdf",
    "t_ppf",
    "norm_ppf",
    "mean_std",
    "Difference",
    "paired_difference",
    "welch_difference",
    "compare_to_baseline",
]

_TINY = 1e-300
_EPS = 1e-16


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction ``1 + d_1/(1 + d_2/(1 + ...))`` of the incomplete beta function
    (A&S 26.5.8), evaluated with the modified Lentz algorithm."""
    f = 1.0
    c = 1.0
    d = 0.0
    for j in range(1, 100_000):
        m = j // 2
        if j % 2:  # d_{2m+1}
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:  # d_{2m}
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + num / c
        c = c if abs(c) > _TINY else _TINY
        delta = c * d
        f *= delta
        if abs(delta - 1.0) < _EPS:
            return f
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got {x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    # The continued fraction converges fast for x < (a+1)/(a+b+2); otherwise use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) / (a * _betacf(a, b, x))
    return 1.0 - math.exp(log_front) / (b * _betacf(b, a, 1.0 - x))


def _norm_sf(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def t_sf(t: float, df: float) -> float:
    """Upper tail ``P(T > t)`` of Student's t with ``df > 0`` degrees of freedom (real-valued;
    ``math.inf`` gives the normal distribution)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(df) or df > 1e7:  # the normal limit; lgamma cancellation hurts beyond
        return _norm_sf(t)
    if t < 0:
        return 1.0 - t_sf(-t, df)
    if math.isinf(t):
        return 0.0
    x = df / (df + t * t)
    return 0.5 * betainc(df / 2.0, 0.5, x)


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` of Student's t with ``df`` degrees of freedom."""
    return t_sf(-t, df)


def _upper_quantile(sf: Any, q: float) -> float:
    """The ``t >= 0`` with ``sf(t) = q`` for a decreasing tail ``sf`` with ``sf(0) = 1/2``."""
    lo, hi = 0.0, 1.0
    while sf(hi) > q:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if sf(mid) > q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t: the ``t`` with ``P(T <= t) = p`` (e.g. ``t_ppf(0.975, 4) =
    2.776445``). ``df`` may be real (Welch) or ``math.inf`` (normal)."""
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    if p == 0.5:
        return 0.0
    q = 1.0 - p
    if df == 1.0:  # Cauchy: exact closed form
        return math.tan(math.pi * (p - 0.5))
    if df == 2.0:  # exact closed form: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    if math.isinf(df) or df > 1e7:
        return _upper_quantile(_norm_sf, q)
    return _upper_quantile(lambda t: t_sf(t, df), q)


def norm_ppf(p: float) -> float:
    """Quantile of the standard normal distribution."""
    return t_ppf(p, math.inf)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample standard deviation (ddof=1), n)``; the std is NaN for n < 2, both NaN for n = 0."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, math.nan, n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var), n


@dataclass
class Difference:
    """``variant - baseline`` with its confidence interval.

    Attributes:
        diff: point estimate (mean of per-seed differences, or difference of means).
        low, high: confidence interval bounds (NaN when it cannot be computed, n < 2).
        method: ``"paired"`` or ``"welch"``.
        df: degrees of freedom of the t quantile (NaN when undefined).
        se: standard error of ``diff``.
        n_variant, n_baseline: seeds on each side.
        confidence: e.g. 0.95.
    """

    diff: float
    low: float
    high: float
    method: str
    df: float
    se: float
    n_variant: int
    n_baseline: int
    confidence: float = 0.95

    @property
    def defined(self) -> bool:
        """Whether the interval could be computed."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def contains_zero(self) -> bool | None:
        """Whether the interval contains 0 (None when it is undefined)."""
        if not self.defined:
            return None
        return self.low <= 0.0 <= self.high

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["contains_zero"] = self.contains_zero
        return d


def _interval(diff: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    if math.isnan(se) or math.isnan(df):
        return math.nan, math.nan
    if se == 0.0:  # every seed gave the same difference: a degenerate, zero-width interval
        return diff, diff
    half = t_ppf(0.5 + confidence / 2.0, df) * se
    return diff - half, diff + half


def paired_difference(
    variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> Difference:
    """Paired t interval of ``variant - baseline``; ``variant[k]`` and ``baseline[k]`` come from
    the same seed."""
    if len(variant) != len(baseline):
        raise ValueError(f"paired samples need equal lengths, got {len(variant)} and {len(baseline)}")
    d = [float(a) - float(b) for a, b in zip(variant, baseline, strict=True)]
    mean, sd, n = mean_std(d)
    se = sd / math.sqrt(n) if n >= 2 else math.nan
    df = float(n - 1) if n >= 2 else math.nan
    low, high = _interval(mean, se, df, confidence)
    return Difference(mean, low, high, "paired", df, se, n, n, confidence)


def welch_difference(
    variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> Difference:
    """Welch's unequal-variance t interval of ``mean(variant) - mean(baseline)``."""
    ma, sa, na = mean_std(variant)
    mb, sb, nb = mean_std(baseline)
    diff = ma - mb
    if na < 2 or nb < 2:
        return Difference(diff, math.nan, math.nan, "welch", math.nan, math.nan, na, nb, confidence)
    va, vb = sa * sa / na, sb * sb / nb
    se = math.sqrt(va + vb)
    if se == 0.0:
        df = float(na + nb - 2)  # both samples constant; the interval is degenerate anyway
    else:
        df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    low, high = _interval(diff, se, df, confidence)
    return Difference(diff, low, high, "welch", df, se, na, nb, confidence)


def compare_to_baseline(
    variant: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95
) -> Difference:
    """Difference of a variant to the baseline from ``{seed: value}`` maps: paired when both
    finished exactly the same seeds, Welch otherwise."""
    if set(variant) == set(baseline):
        seeds = sorted(variant)
        return paired_difference([variant[s] for s in seeds], [baseline[s] for s in seeds], confidence)
    return welch_difference(list(variant.values()), list(baseline.values()), confidence)
