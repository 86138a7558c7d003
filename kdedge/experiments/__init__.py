"""Experiments built from many runs: sweeps (sweep, sweep_results, sweep_ray), the budgeted search
(search/) and the graceful stop both share (stopping)."""
