"""The pieces of `python bench/tables.py`, which turns the result files in bench/results/ into every published
table: the benchmark scripts' raw files into table files (training.py, throughput.py, retina.py, deploy.py,
search.py), the fidelity table (fidelity.py with the reference numbers of fidelity_rows.py), then
docs/results.md and README's "Results at a glance" (page.py). Standard library only; numbers are read, never typed.

Every function here takes the result files as a mapping (file name -> parsed JSON) and returns new file
contents, so that `--check` compares them with the files on disk without writing anything.
"""
