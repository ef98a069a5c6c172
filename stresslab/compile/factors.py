"""Systematic factor setup: names, correlation square root (MODEL.md §1).

The factors are stacked as [global, industries..., regions...]; the draws themselves
happen per path inside the kernel (stresslab._kernels.settlement.factor_index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stresslab.errors import ScenarioError

__all__ = ["factor_names", "correlation_sqrt"]

_PSD_TOL = 1e-10


def factor_names(industries: Sequence[str], regions: Sequence[str]) -> list[str]:
    """Names of the stacked factors, used as their random-stream keys."""
    return ["global"] + [f"industry:{i}" for i in industries] + [f"region:{r}" for r in regions]


def correlation_sqrt(sigma: np.ndarray) -> np.ndarray:
    """A matrix ``A`` with ``A @ A.T == sigma`` for a correlation matrix (PSD allowed).

    Parameters
    ----------
    sigma : ndarray of shape (K, K)
        Symmetric, unit-diagonal, positive semi-definite.

    Returns
    -------
    ndarray of shape (K, K)
        The symmetric root ``V diag(sqrt(max(lambda, 0))) V'`` from the
        eigendecomposition: it exists for singular (semi-definite) matrices, unlike a
        Cholesky factor, and it is the identity for uncorrelated factors, so each factor
        keeps its own innovation draw; a scenario that changes a correlation then moves
        the factors only as much as the correlation requires, and comparisons keep their
        common random numbers.

    Raises
    ------
    ScenarioError
        If ``sigma`` is not symmetric, not unit-diagonal or has a negative eigenvalue.
    """
    sigma = np.asarray(sigma, dtype=float)
    if not np.allclose(sigma, sigma.T, atol=1e-12) or not np.allclose(np.diag(sigma), 1.0):
        raise ScenarioError("factor correlation matrix must be symmetric with unit diagonal")
    values, vectors = np.linalg.eigh(sigma)
    if values[0] < -_PSD_TOL:
        raise ScenarioError(
            f"factor correlation matrix is not positive semi-definite: smallest eigenvalue {values[0]:.6g}"
        )
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
