"""Running a compiled model: simulate, the result schema, chunked and checkpointed runs,
importance sampling, Dask, and comparisons on common random numbers."""
