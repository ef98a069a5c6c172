"""Counter-based random numbers: every draw is a pure function of its coordinates.

A uniform is ``mix64(stream_key(seed, path, month, purpose) + name_key(item))`` where
``mix64`` is the SplitMix64 finaliser (a bijection of 64-bit words with full avalanche),
``stream_key`` hashes the (seed, path, month, purpose) coordinates and ``name_key`` hashes
the loan's ``loan_id`` or the factor's name. Because nothing is consumed
sequentially, a draw does not depend on which other draws were made: any chunking, thread
count or number of Dask workers gives bitwise the same numbers, a loan's draws do not move
when other loans are absorbed, and two scenarios run with one seed share their draws
(common random numbers, MODEL.md §7). The sum of two independent hashes keeps distinct
coordinates from sharing whole runs of inputs, which an additive counter (plain SplitMix
streams) would allow.

Variable-length draws (gamma and beta rejection sampling) start a small SplitMix64 sequence
from such a keyed word, so they too are pure functions of their coordinates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from stresslab._numba import njit

__all__ = [
    "STREAMS_VERSION",
    "PURPOSE_TRANSITION",
    "PURPOSE_FACTOR",
    "PURPOSE_MIXING",
    "PURPOSE_RECOVERY",
    "PURPOSE_COUNTERPARTY",
    "PURPOSE_COMPONENT",
    "mix64",
    "mix64_array",
    "stream_key",
    "to_unit",
    "uniform",
    "next_uniform",
    "name_keys",
]

# Version of the streams: a change of how words become numbers changes every draw. 2: uniforms
# from 52 bits plus half a step (version 1 used 53 bits and could return exactly 1.0).
STREAMS_VERSION = 2

# Purposes: one stream family each, so adding a new kind of draw never moves old ones.
PURPOSE_TRANSITION = 0  # one uniform per live loan-month (MODEL.md §3)
PURPOSE_FACTOR = 1  # systematic factor innovations eta_t (month 0 = stationary start)
PURPOSE_MIXING = 2  # Student-t mixing variable W of the path
PURPOSE_RECOVERY = 3  # unsecured recovery rate of a defaulted loan
PURPOSE_COUNTERPARTY = 4  # credit-enhancement provider failure
PURPOSE_COMPONENT = 5  # importance sampling: does the path come from the nominal law (defensive mixture)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S12 = np.uint64(12)
_TWO_M52 = 2.0**-52


@njit()
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser: a bijective 64-bit mixer (Steele, Lea & Flood 2014)."""
    z = np.uint64(z)  # a no-op in kernels; keeps calls from Python (int arguments) unsigned
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def mix64_array(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` of every element of a uint64 array (vectorised numpy, wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


@njit()
def stream_key(seed: np.uint64, path: np.int64, month: np.int64, purpose: np.int64) -> np.uint64:
    """Key of the stream of draws of one (seed, path, month, purpose)."""
    k = mix64(np.uint64(seed) * _GOLDEN + np.uint64(path))
    k = mix64(k + np.uint64(month) * _GOLDEN)
    return mix64(k ^ (np.uint64(purpose) * _M2))


@njit()
def to_unit(word: np.uint64) -> float:
    """The uniform of a 64-bit word: its top 52 bits plus half a step, (k + 1/2) 2^-52.

    The values run from 2^-53 to 1 - 2^-53, all exact in float64, so a uniform is never
    0 or 1. (With 53 bits, (2^53 - 1/2) 2^-53 rounds to 1.0: Φ^-1 of it is infinite.)
    """
    return (float(np.uint64(word) >> _S12) + 0.5) * _TWO_M52


@njit()
def uniform(key: np.uint64, item: np.uint64) -> float:
    """A uniform in [2^-53, 1 - 2^-53] (never 0 or 1) for ``item`` of the stream ``key``."""
    return to_unit(mix64(np.uint64(key) + np.uint64(item)))


@njit()
def next_uniform(state: np.uint64) -> tuple[float, np.uint64]:
    """Next uniform of a SplitMix64 sequence and the advanced state (for rejection samplers)."""
    state = np.uint64(state) + _GOLDEN
    return to_unit(mix64(state)), state


def name_keys(names: Sequence[str]) -> np.ndarray:
    """Stream keys from names (loan ids, factor names): a loan's or a factor's draws depend
    on its name only, not on its row in the file or on which other names exist."""
    out = np.empty(len(names), dtype=np.uint64)
    for j, name in enumerate(names):
        digest = hashlib.blake2b(str(name).encode("utf-8"), digest_size=8).digest()
        out[j] = np.uint64(int.from_bytes(digest, "little"))
    return out

