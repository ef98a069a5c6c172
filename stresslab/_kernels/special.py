"""Special functions and samplers used inside the kernels.

- ``norm_cdf``: the standard normal CDF by linear interpolation in a table (``NormalTable``),
  because an exact ``erfc`` per loan-month costs several times the whole rest of a step
  (DESIGN.md). The table spans [-10, 10] with step 1/1024: the interpolation error is at
  most h^2/8 * max|phi'| < 3e-8 absolutely (measured in tests/test_special.py), far below
  any Monte Carlo error. Beyond the table the tail mass is below 8e-24, less than the
  smallest uniform the generator returns (2^-53), so no draw can tell the difference.
  NaN in gives NaN out (``below_norm_cdf``: False, as ``u < NaN``), never a table read out of range.
- ``ndtri``: the inverse normal CDF by Wichura's algorithm AS 241 (PPND16), relative
  accuracy about 1e-16 (Wichura 1988, Applied Statistics 37(3), 477-484).
- ``log_gamma_draw`` (Marsaglia & Tsang 2000, in log space for shapes below 1),
  ``beta_draw`` (ratio of gammas, formed from their logarithms: exact for tiny shapes) and
  ``binomial_draw`` (order-statistic splitting, then inversion), for pooled books.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from stresslab._numba import njit
from stresslab._rng import next_uniform

__all__ = ["NormalTable", "normal_table", "norm_cdf", "below_norm_cdf", "ndtri", "log_gamma_draw", "beta_draw", "binomial_draw"]

_TABLE_LO = -10.0
_TABLE_STEPS_PER_UNIT = 1024


class NormalTable(NamedTuple):
    """Tabulated standard normal CDF: values at ``lo + k / inv_step``."""

    values: np.ndarray
    lo: float
    inv_step: float


def normal_table() -> NormalTable:
    """Build the tabulated normal CDF used by the kernels."""
    n = int(2 * -_TABLE_LO * _TABLE_STEPS_PER_UNIT) + 1
    x = _TABLE_LO + np.arange(n) / _TABLE_STEPS_PER_UNIT
    return NormalTable(ndtr(x), _TABLE_LO, float(_TABLE_STEPS_PER_UNIT))


@njit()
def norm_cdf(z: float, values: np.ndarray, lo: float, inv_step: float) -> float:
    """Standard normal CDF at ``z`` from the table (±inf and beyond-table values clamp; NaN gives NaN)."""
    x = (z - lo) * inv_step
    last = values.shape[0] - 1
    if not 0.0 < x < last:  # NaN fails every comparison: it must not reach the index
        if x <= 0.0:
            return 0.0
        return 1.0 if x >= last else math.nan
    k = np.uint64(x)  # unsigned: no negative-index wraparound in the lookups (a measurable cost)
    below = values[k]
    return below + (x - np.float64(k)) * (values[k + np.uint64(1)] - below)


@njit()
def below_norm_cdf(u: float, z: float, values: np.ndarray, lo: float, inv_step: float) -> bool:
    """``u < norm_cdf(z)``, deciding from the bracketing table values when they suffice.

    The interpolant is monotone and equals the table at grid points, so ``u`` outside the
    two table values around ``z`` settles the answer without interpolating. The answer is
    always exactly ``u < norm_cdf(z, ...)``: False for NaN ``z``.
    """
    x = (z - lo) * inv_step
    last = values.shape[0] - 1
    if not 0.0 < x < last:  # NaN fails every comparison: it must not reach the index
        return x >= last and u < 1.0
    k = np.uint64(x)
    above = values[k + np.uint64(1)]
    if u >= above:
        return False
    below = values[k]
    if u < below:
        return True
    return u < below + (x - np.float64(k)) * (above - below)


@njit()
def ndtri(p: float) -> float:
    """Inverse standard normal CDF (AS 241); ``p`` in (0, 1), -inf at 0, +inf at 1, NaN for NaN."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2.5090809287301226727e3 * r + 3.3430575583588128105e4) * r
                    + 6.7265770927008700853e4) * r + 4.5921953931549871457e4) * r
                  + 1.3731693765509461125e4) * r + 1.9715909503065514427e3) * r
                + 1.3314166789178437745e2) * r + 3.3871328727963666080e0)
        den = (((((((5.2264952788528545610e3 * r + 2.8729085735721942674e4) * r
                    + 3.9307895800092710610e4) * r + 2.1213794301586595867e4) * r
                  + 5.3941960214247511077e3) * r + 6.8718700749205790830e2) * r
                + 4.2313330701600911252e1) * r + 1.0)
        return q * num / den
    r = p if q < 0.0 else 1.0 - p
    if r == 0.0:  # the limits, instead of inf / inf
        return -math.inf if q < 0.0 else math.inf
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                    + 2.41780725177450611770e-1) * r + 1.27045825245236838258e0) * r
                  + 3.64784832476320460504e0) * r + 5.76949722146069140550e0) * r
                + 4.63033784615654529590e0) * r + 1.42343711074968357734e0)
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                    + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
                  + 6.89767334985100004550e-1) * r + 1.67638483018380384940e0) * r
                + 2.05319162663775882187e0) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                    + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
                  + 2.96560571828504891230e-1) * r + 1.78482653991729133580e0) * r
                + 5.46378491116411436990e0) * r + 6.65790464350110377720e0)
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                    + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
                  + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
                + 5.99832206555887937690e-1) * r + 1.0)
    x = num / den
    return -x if q < 0.0 else x


@njit()
def log_gamma_draw(shape: float, state: np.uint64) -> tuple[float, np.uint64]:
    """Logarithm of a Gamma(shape, 1) draw from the SplitMix64 sequence at ``state``.

    Returns log G and the advanced state. Marsaglia-Tsang for the shape a >= 1; for a < 1
    Gamma(a) = Gamma(a + 1) U^(1/a), taken in log space: log G = log G_{a+1} + log(U) / a.
    U^(1/a) itself underflows to 0 for small a (a = 0.005: every U < 0.024), which made a
    ratio of gammas 0 / 0; its logarithm is always finite.
    """
    log_boost = 0.0
    a = shape
    if a < 1.0:
        u, state = next_uniform(state)
        log_boost = math.log(u) / a
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        u, state = next_uniform(state)
        x = ndtri(u)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, state = next_uniform(state)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return math.log(d * v) + log_boost, state


@njit()
def beta_draw(a: float, b: float, state: np.uint64) -> tuple[float, np.uint64]:
    """Beta(a, b) draw and the advanced state, for any shapes a, b > 0.

    X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), computed as 1 / (1 + exp(log Y - log X))
    from the logarithms: never 0 / 0 however small the shapes (the recovery rate of a
    ``[recovery] dispersion`` near 1 has shapes near 0).
    """
    log_x, state = log_gamma_draw(a, state)
    log_y, state = log_gamma_draw(b, state)
    d = log_y - log_x
    if d > 0.0:  # exp of a non-positive number only: no overflow (plain Python raises on it)
        e = math.exp(-d)
        return e / (1.0 + e), state
    return 1.0 / (1.0 + math.exp(d)), state


_INVERSION_MEAN = 16.0  # below this mean the binomial is drawn by inversion


@njit()
def binomial_draw(n: int, p: float, state: np.uint64) -> tuple[int, np.uint64]:
    """Binomial(n, p) draw from the SplitMix64 sequence at ``state``; exact for every n.

    Splitting by order statistics (Devroye 1986, X.4): the k-th smallest of n uniforms is
    Beta(k, n + 1 - k); if it lies above p, the count is Binomial(k - 1, p / b), else
    k + Binomial(n - k, (p - b) / (1 - b)). Halving n until n min(p, 1 - p) < 16 takes
    O(log n) beta draws; the rest is inversion by the pmf recurrence.
    """
    if n <= 0 or p <= 0.0:
        return 0, state
    if p >= 1.0:
        return n, state
    flip = p > 0.5
    q = 1.0 - p if flip else p
    total = n
    count = 0
    while n * q >= _INVERSION_MEAN:
        k = (n + 1) // 2
        b, state = beta_draw(float(k), float(n + 1 - k), state)
        if q < b:
            n = k - 1
            q = q / b
        else:
            count += k
            n -= k
            q = (q - b) / (1.0 - b)
    u, state = next_uniform(state)
    ratio = q / (1.0 - q)
    prob = (1.0 - q) ** n
    cdf = prob
    k = 0
    while u > cdf and k < n:
        prob *= ratio * (n - k) / (k + 1)
        k += 1
        cdf += prob
    count += k
    return (total - count if flip else count), state
