"""`kdedge search`: the most accurate student that meets a latency and size budget on a target runtime.

    space.py       the search space (a YAML of model families x input sizes; spaces/edge.yaml is packaged)
    target.py      --target FORMAT-PRECISION and the budget
    cost.py        stage 1: random-weight files timed by the bench machinery; cost_cache.py keeps them
    candidate.py   one candidate trained for one rung (a run directory), the teacher at its own size
    halving.py     stage 2: successive halving; trainers.py: here or on Ray
    finalists.py   stage 3: the finalists' real files exported and benched; the pick; SEARCH/best
    results.py     search.json / search.csv rows and the time split; plot.py: pareto.png
    run.py         the three stages in order, resumable, with a graceful stop
    options.py     SearchConfig: what one search is asked (kdedge.commands.options.SearchOptions is the
                   command's and kdedge.search(...)'s form of it), checked before any work

docs/search.md explains the stages and how to read the table and the plot.
"""
