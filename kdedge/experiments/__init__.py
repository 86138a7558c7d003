"""Experiments built from many runs: sweeps (sweep, sweep_results, sweep_ray), studies over recipes x seeds
x rows (study/), the budgeted search (search/) and the graceful stop they share (stopping)."""
