"""Experiments built from many runs or on top of one: sweeps (sweep, sweep_results), the alpha study
(alpha_study) and the transfer-set bias fix (biasfix)."""
