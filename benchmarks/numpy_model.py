"""A straightforward numpy implementation of the same model, vectorised over loans.

It loops over paths and months and keeps the state of every loan in arrays, as one would
write the model without numba. It uses the same counter-based uniforms and the exact
normal CDF, so it follows the numba kernel path by path (up to the kernel's tabulated CDF,
which moves a decision only when a uniform falls within ~3e-8 of a threshold); recovery
rates use numpy's Beta sampler seeded per path, so with recovery dispersion > 0 the two
agree in distribution only. Used as the speed baseline in benchmarks/ and as an
independent implementation in tests/test_engine.py.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from stresslab._kernels.arrays import ANNUITY, BULLET, EQUAL_PRINCIPAL, STATE_D, STATE_P
from stresslab._rng import (
    PURPOSE_FACTOR,
    PURPOSE_MIXING,
    PURPOSE_TRANSITION,
    stream_key,
)
from stresslab.compile.model import CompiledModel
from stresslab.vocabulary import STATES

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _uniforms(key: np.uint64, items: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = items + key
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def simulate_numpy(model: CompiledModel, n_paths: int, seed: int) -> dict[str, np.ndarray]:
    """Simulate ``n_paths`` paths; returns loss_gross, interest_income, count_by_state."""
    lo, tb, pa = model.loans, model.tables, model.params
    n, n_months = model.n_loans, model.n_months
    n_ind = tb.loadings.shape[0]
    seed = np.uint64(seed)
    loss = np.zeros((n_paths, n_months))
    income = np.zeros((n_paths, n_months))
    counts = np.zeros((n_paths, n_months, len(STATES)), dtype=np.int64)
    for path in range(n_paths):
        rng = np.random.default_rng([int(seed), path])
        z = np.zeros(tb.sqrt_cov.shape[0])
        for t in range(n_months + 1):
            eta = ndtri(_uniforms(stream_key(seed, path, t, PURPOSE_FACTOR), tb.factor_key))
            step = tb.sqrt_cov @ eta
            z = step if t == 0 else pa.ar1 * z + np.sqrt(1 - pa.ar1**2) * step
            if t == 0:
                x_hist = np.empty((n_months, n))
                continue
            a = tb.loadings[lo.industry]
            x_hist[t - 1] = a[:, 0] * z[0] + a[:, 1] * z[1 + lo.industry] + a[:, 2] * z[1 + n_ind + lo.region]
        inv_sqrt_w = 1.0
        if pa.t_copula:
            inv_sqrt_w = np.sqrt(rng.chisquare(pa.dof) / pa.dof)
            _ = stream_key(seed, path, 0, PURPOSE_MIXING)  # the kernel's stream; numpy draws its own
        s = lo.state.astype(np.int64)
        n_left = lo.term.astype(np.int64).copy()
        bp, ap, ai = lo.principal.copy(), lo.arrears_principal.copy(), lo.arrears_interest.copy()
        accrued = np.zeros(n)
        live = np.ones(n, dtype=bool)
        for t in range(n_months):
            past = n_left == 0
            pre_bullet = (lo.amortization == BULLET) & (n_left > 1)
            has_due = ~past & ~pre_bullet
            accrued = np.where(live & pre_bullet, accrued + lo.rate * (bp + ap), accrued)
            due_int = np.where(past, lo.rate * ap, np.where(has_due, lo.rate * (bp + ap) + accrued, 0.0))
            accrued = np.where(has_due, 0.0, accrued)
            annuity = np.clip(lo.installment - lo.rate * bp, 0.0, bp)
            pp = np.select(
                [has_due & (n_left == 1), has_due & (lo.amortization == ANNUITY), has_due & (lo.amortization == EQUAL_PRINCIPAL)],
                [bp, annuity, np.minimum(lo.installment, bp)],
                0.0,
            )
            n_left = np.maximum(n_left - 1, 0)
            stress = (tb.log_mult[lo.group, t] + tb.cell[t, lo.industry, lo.region]) * lo.inv_sigma
            cur = live & (s == 0) & has_due
            dlq = live & (s > 0)
            u = _uniforms(stream_key(seed, path, t + 1, PURPOSE_TRANSITION), lo.key)
            miss_at = lo.threshold + stress
            p_miss = ndtr((miss_at * inv_sqrt_w - x_hist[t]) * lo.inv_idio)
            k = np.clip(s - 1, 0, 2)
            x_d = pa.cycle_sensitivity * x_hist[t]
            roll_at = tb.roll_threshold[k] + pa.roll_sensitivity * stress
            cure_at = np.maximum(tb.cure_threshold[k] + pa.cure_sensitivity * stress, roll_at)
            roll = ndtr((roll_at * inv_sqrt_w - x_d) * lo.inv_idio_delinquent)
            no_cure = ndtr((cure_at * inv_sqrt_w - x_d) * lo.inv_idio_delinquent)
            miss = (cur & (u < p_miss)) | (dlq & (u < roll))
            cured = dlq & ~miss & (u >= no_cure)
            pays = (cur & ~miss) | (dlq & ~miss)
            income[path, t] += (due_int * pays).sum() + (ai * cured).sum()
            ai = np.where(miss, ai + due_int, np.where(cured, 0.0, ai))
            ap = np.where(miss, ap + pp, np.where(cured, 0.0, ap))
            bp = np.where(miss | pays, bp - pp, bp)
            s = np.where(miss, s + 1, np.where(cured, 0, s))
            stays_at = ndtr((np.maximum(pa.prepay_threshold, miss_at) * inv_sqrt_w - x_hist[t]) * lo.inv_idio)
            prepay = cur & ~miss & ((n_left == 0) | ((pa.prepay_threshold < np.inf) & (u >= stays_at)))
            paid_off = prepay | (cured & (n_left == 0) & (bp <= 0))
            defaulted = live & (s == pa.default_after)
            ead = bp + ap + ai + accrued
            mean = ndtr(lo.recovery_probit + pa.recovery_cycle * x_hist[t] - pa.lgd_sensitivity * stress)
            rate = mean
            if pa.recovery_dispersion > 0:
                size = 1 / pa.recovery_dispersion - 1
                inner = (mean > 0) & (mean < 1)
                rate = np.where(inner, rng.beta(np.where(inner, mean, 0.5) * size, np.where(inner, 1 - mean, 0.5) * size), mean)
            rev = tb.revenue[t, lo.industry, lo.region] * np.exp(lo.sigma * x_hist[t] - 0.5 * lo.sigma**2 * lo.rho)
            pledged = np.minimum(ead, lo.pledge * rev * (1 - pa.pledge_haircut))
            unsecured = rate * (ead - pledged) * (1 - pa.recovery_cost)
            gross = np.maximum(ead - pledged * lo.pledge_pv - unsecured * lo.unsecured_pv, 0.0)
            loss[path, t] = gross[defaulted].sum()
            s = np.where(defaulted, STATE_D, np.where(paid_off & live, STATE_P, s))
            live &= ~defaulted & ~paid_off
            counts[path, t] = np.bincount(s, minlength=len(STATES))
    return {"loss_gross": loss, "interest_income": income, "count_by_state": counts}
