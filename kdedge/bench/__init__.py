"""`kdedge bench`: latency, throughput, memory, size and accuracy of students vs teachers over PyTorch,
onnxruntime and OpenVINO, every row in its own child process. Never imports the training loop.

runners.py   the predict(batch) -> logits protocol and its three runtimes
timing.py    warm-up + time-based repetitions -> p50/p90/p99
isolate.py   one child process per row, with a timeout; worker.py is the child's side
targets.py   run directories and bare .onnx files -> models + their test sets
run.py       plan, measure, score (BenchOptions, run_bench)
report.py    comparisons, table, JSON/CSV/Markdown, Pareto PNG
peak.py      achievable GFLOP/s (GEMM)      deploy.py   issue 11: fastest file within the accuracy bound
"""
