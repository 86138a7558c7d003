"""`kdedge bench`: latency, throughput, memory, size and accuracy of students vs teachers over PyTorch,
onnxruntime and OpenVINO, every row in its own child process. Never imports the training loop.

command.py   CLI values -> BenchOptions -> run -> table / files      run.py      plan, measure, score
targets.py   run directories and bare .onnx files -> models + test sets  onnx_info.py  metadata, params, FLOPs
runners.py   the predict(batch) -> logits protocol and its runtimes  timing.py   warm-up, p50/p90/p99
isolate.py   one child process per row, with a timeout; worker.py is the child's side
report.py    comparisons, rich table, JSON / CSV / Markdown, Pareto PNG     peak.py   GEMM GFLOP/s
deploy.py    the fastest file within the accuracy bound, `kdedge export --target cpu-x86`
"""

import sys

from kdedge import CallablePackage

sys.modules[__name__].__class__ = CallablePackage  # kdedge.bench(run, ...) is the API call (kdedge.api)
