"""The tight hand-written loop `kdedge distill hinton_mnist_800` is measured against (bench/distill_overhead.py):
MNIST as tensors, the teacher's soft targets computed once, the test set scored once per epoch. The same
job: 784-800-800-10 student, SGD lr 0.05 momentum 0.9 with a cosine schedule, clip 1.0, Hinton loss alpha
0.7 T 20, batch 128.
Prints one JSON line: the last epoch's test errors and the seconds of each part.

    python bench/tight_distill.py TEACHER.safetensors DATA_ROOT EPOCHS
"""

import time

START = time.perf_counter()
import json  # noqa: E402 - the imports are timed
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402


def idx(path):  # an MNIST idx file as a uint8 tensor
    raw = open(path, "rb").read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims).copy())


def mlp(hidden, dropout):  # kdedge's mlp: the teacher's weights load by the same layer indices
    layers = [nn.Flatten(), nn.Dropout(dropout[0]), nn.Linear(784, hidden), nn.ReLU(), nn.Dropout(dropout[1])]
    return nn.Sequential(*layers, nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout[1]), nn.Linear(hidden, 10))


def main(teacher_file, root, epochs, batch=128, alpha=0.7, T=20.0):
    seconds, clock = {"imports": time.perf_counter() - START, "evaluation": 0.0}, time.perf_counter()
    torch.manual_seed(0)
    x, y, tx, ty = (
        idx(f"{root}/MNIST/raw/{n}-idx{d}-ubyte")
        for n, d in (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))
    )
    x, tx = ((v.float().view(len(v), -1) / 255 - 0.1307) / 0.3081 for v in (x, tx))
    y, ty = y.long(), ty.long()
    seconds["data"], clock = time.perf_counter() - clock, time.perf_counter()
    teacher = mlp(1200, (0.2, 0.5)).eval()
    teacher.load_state_dict(load_file(teacher_file))
    with torch.inference_mode():
        soft = F.softmax(torch.cat([teacher(c) for c in x.split(1024)]) / T, dim=1)  # once, for every epoch
    seconds["teacher"], clock = time.perf_counter() - clock, time.perf_counter()
    student = mlp(800, (0.0, 0.0))
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)  # imports torch._dynamo
    seconds["optimizer"], clock = time.perf_counter() - clock, time.perf_counter()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        for b in torch.randperm(len(x)).split(batch):
            out = student(x[b])
            soft_ce = -(soft[b] * F.log_softmax(out / T, dim=1)).sum(1).mean()
            loss = alpha * T * T * soft_ce + (1 - alpha) * F.cross_entropy(out, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
        scored = time.perf_counter()
        with torch.inference_mode():
            errors = int((student.eval()(tx).argmax(1) != ty).sum())
        student.train()
        seconds["evaluation"] += time.perf_counter() - scored
    seconds["training"] = time.perf_counter() - clock - seconds["evaluation"]
    print(json.dumps({"test_errors": errors, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
