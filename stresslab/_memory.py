"""Memory available to the process, for refusals before a big allocation (budget, synthetic books)."""

from __future__ import annotations

import os
import resource

__all__ = ["available_memory"]


def available_memory() -> float:
    """Bytes of memory available to a new allocation.

    The smaller of the system's MemAvailable (Linux; free pages elsewhere) and, under an
    address-space limit (``ulimit -v``), what the limit leaves above the process's
    current virtual size: a run refused up front instead of failing after it simulated.
    """
    return min(_system_available(), _address_space_left())


def _system_available() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _address_space_left() -> float:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return float("inf")
    return max(float(soft) - _virtual_size(), 0.0)


def _virtual_size() -> float:
    """Bytes of this process's address space in use (VmSize), 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return 0.0
