"""Hydra configs from Python (`compose`), the options schema of the entry points (`options`), and the callback of
optimisation sweeps (`sweeps`)."""
