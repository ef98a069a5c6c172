"""The one place that decides how stresslab compiles its kernels.

``STRESSLAB_DISABLE_JIT=1`` runs the simulation kernels as plain Python (slow; for
debugging with pdb or coverage). The calibration's integration kernel stays compiled
(``always=True``): in plain Python it would take minutes per book, and it holds no
per-loan logic a debugger needs. No fastmath: it changes results bitwise and gains
nothing on branchy code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numba

__all__ = ["njit", "prange", "DISABLE_JIT", "needs_compiling"]

DISABLE_JIT = os.environ.get("STRESSLAB_DISABLE_JIT", "0") not in ("", "0")

prange = range if DISABLE_JIT else numba.prange


def njit(*, parallel: bool = False, always: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Compile a kernel with stresslab's options (cached, no fastmath, error model numpy).

    ``always``: compile even under ``STRESSLAB_DISABLE_JIT`` (and use numba's prange then).
    """

    def decorate(func: Callable[..., Any]) -> Any:
        if DISABLE_JIT and not always:
            return func
        return numba.njit(cache=True, parallel=parallel, error_model="numpy")(func)

    return decorate


def needs_compiling(*kernels: Any) -> bool:
    """True when a kernel has no compiled version loaded in this process nor in numba's cache.

    That is a first run (or one after the kernel's source changed): numba will compile for
    tens of seconds before the first path runs. Reads numba's cache index (a private but
    long-stable part of numba); when it cannot tell, it says False (no false alarm).
    """
    for kernel in kernels:
        if not hasattr(kernel, "overloads") or kernel.overloads:
            continue  # plain Python (STRESSLAB_DISABLE_JIT) or already compiled here
        try:
            if not kernel._cache._cache_file._load_index():  # {} when absent or stale
                return True
        except Exception:  # noqa: BLE001 (a numba without this layout: no notice, nothing else changes)
            continue
    return False
