"""From book and scenario to the arrays the kernels read: binding, PD calibration, factors,
policy levers, layers and pooling (one CompiledModel per run)."""
