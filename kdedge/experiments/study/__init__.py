"""`kdedge study`: recipes x seeds x rows (variants, a grid), every KD row beside its no-KD baseline, one
teacher per seed shared by every student of that seed; the table (mean, spread, vs no KD) written by the
study itself.

    spec.py     what a study is (the command line's options or a study file) -> StudySpec
    plan.py     every run decided before anything trains: resolved recipes and folders
    run.py      training the plan, seed by seed; finished runs are read, never retrained; graceful stop
    results.py  run folders -> per-run records -> rows (mean, spread, paired difference to no KD)
    table.py    STUDY/study.json (a result table file that keeps every number) and study.md
"""
