"""Loss allocation through credit-enhancement layers, path by path (MODEL.md §5).

The path kernel hands over the path's default events; here they are taken in month order
and passed down the ordered layers. Each layer takes its share of what the layers before
it left, per loan (share, attachment and limit, per-loan limit, basis), subject to its
aggregate capacity (used in month order, pro rata when a month's claims exceed what is
left), top-ups, an annual cap, and the failure of its provider. What no layer pays is the
lender's retained loss, so per event: gross = sum of layer payouts + retained.
"""

from __future__ import annotations

import numpy as np

from stresslab._kernels.arrays import BASIS_PRINCIPAL, QUOTA_SHARE, LayerArrays
from stresslab._numba import njit

__all__ = ["allocate_losses"]


@njit()
def allocate_losses(
    ev_loan: np.ndarray,
    ev_month: np.ndarray,
    ev_count: np.ndarray,
    ev_loss: np.ndarray,
    ev_principal_share: np.ndarray,
    layers: LayerArrays,
    failure_month: np.ndarray,
    n_months: int,
    paid: np.ndarray,
    capacity_left: np.ndarray,
) -> np.ndarray:
    """Pass a path's default losses through the layers in month order.

    Parameters
    ----------
    ev_loan, ev_month : ndarray of shape (n_events,)
        Loan (or pool) index and month (0-based) of each default.
    ev_count : ndarray of shape (n_events,)
        Number of identical loans the event stands for (1 at loan level; a pooled book's
        defaults of one pool in one month share their loss equally). Attachment, limit and
        per-loan limit apply to each loan's share.
    ev_loss : ndarray of shape (n_events,)
        Gross loss of each default (of all its loans).
    ev_principal_share : ndarray of shape (n_events,)
        Principal / EAD at default: the part of a loss a ``principal``-basis layer covers.
    layers : LayerArrays
    failure_month : ndarray of shape (n_layers,)
        0-based month from which the provider pays nothing (``n_months`` = never).
    n_months : int
    paid : ndarray of shape (n_events, n_layers)
        Output: what each layer pays for each default.
    capacity_left : ndarray of shape (n_months, n_layers)
        Output: aggregate capacity left at each month end (0.0 exactly when exhausted).

    Returns
    -------
    ndarray of shape (n_events,)
        The lender's retained loss of each default.
    """
    n_events = ev_loss.shape[0]
    n_layers = layers.share.shape[0]
    remaining = ev_loss.copy()
    # events in month order (counting sort; loan order within a month)
    start = np.zeros(n_months + 1, dtype=np.int64)
    for e in range(n_events):
        start[ev_month[e] + 1] += 1
    for t in range(n_months):
        start[t + 1] += start[t]
    order = np.empty(n_events, dtype=np.int64)
    fill = start[:-1].copy()
    for e in range(n_events):
        order[fill[ev_month[e]]] = e
        fill[ev_month[e]] += 1

    cap = layers.capacity.copy()
    annual = layers.annual_cap.copy()
    for t in range(n_months):
        for k in range(n_layers):
            if t > 0 and layers.topup_every[k] > 0 and t % layers.topup_every[k] == 0:
                cap[k] = layers.capacity[k]
            if t % 12 == 0:
                annual[k] = layers.annual_cap[k]
            total = 0.0
            for idx in range(start[t], start[t + 1]):
                e = order[idx]
                claim = 0.0
                if t < failure_month[k] and layers.eligible[k, ev_loan[e]]:
                    n = ev_count[e]
                    base = remaining[e] / n
                    if layers.basis[k] == BASIS_PRINCIPAL:
                        base *= ev_principal_share[e]
                    if layers.kind[k] == QUOTA_SHARE:
                        claim = layers.share[k] * base
                    else:
                        claim = layers.share[k] * min(layers.limit[k], max(0.0, base - layers.attachment[k]))
                    claim = min(n * min(claim, layers.per_loan_limit[k]), remaining[e])
                paid[e, k] = claim
                total += claim
            available = min(cap[k], annual[k])
            if total > available:  # not enough left: every claim of the month paid pro rata
                scale = available / total
                for idx in range(start[t], start[t + 1]):
                    paid[order[idx], k] *= scale
                used = available
            else:
                used = total
            for idx in range(start[t], start[t + 1]):
                e = order[idx]
                remaining[e] -= paid[e, k]
            cap[k] = 0.0 if used >= cap[k] else cap[k] - used
            annual[k] = 0.0 if used >= annual[k] else annual[k] - used
            capacity_left[t, k] = cap[k]
    return remaining
