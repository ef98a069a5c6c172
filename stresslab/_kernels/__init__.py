"""Private numba kernels: arrays in, ``out`` arrays written, no I/O and no validation."""
