"""Feed the counter-based random streams to a statistical test battery (dieharder) on stdout.

Run: python benchmarks/rng_battery.py [--layout engine|counter] | dieharder -g 200 -a

The words are those the kernel turns into uniforms (stresslab._rng): for path p = 0, 1, ...,
month t = 0..35 and item j, the word ``mix64(stream_key(seed, p, t, purpose) + key_j)``,
written as two little-endian 32-bit halves (the uniform keeps the top 52 bits; the battery
sees all 64). Layouts:

- ``engine``: the items are the loans' name keys (blake2b of "L000000" ... "L000999"), as the
  transition draws of a 1,000-loan book are made.
- ``counter``: the items are 0, 1, 2, ... (keys that differ by one), the harshest input the
  additive key allows; the engine never draws so, but a name key can be any word.

docs/random_numbers.md records the results.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from stresslab._numba import njit
from stresslab._rng import PURPOSE_TRANSITION, mix64, name_keys, stream_key

_MONTHS = 36


@njit()
def _block(seed: np.uint64, first_path: int, n_paths: int, keys: np.ndarray, out: np.ndarray) -> None:
    """Words of paths first_path .. first_path + n_paths - 1, in path > month > item order."""
    n = 0
    for p in range(first_path, first_path + n_paths):
        for t in range(_MONTHS):
            key = stream_key(seed, p, t, PURPOSE_TRANSITION)
            for j in range(keys.shape[0]):
                out[n] = mix64(key + keys[j])
                n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["engine", "counter"], default="engine")
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args()
    n_items = 1000
    keys = name_keys([f"L{j:06d}" for j in range(n_items)]) if args.layout == "engine" else np.arange(n_items, dtype=np.uint64)
    paths_per_block = 64
    out = np.empty(paths_per_block * _MONTHS * n_items, dtype=np.uint64)
    stdout = sys.stdout.buffer
    first = 0
    try:
        while True:
            _block(np.uint64(args.seed), first, paths_per_block, keys, out)
            stdout.write(out.tobytes())
            first += paths_per_block
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
