"""The two student loops bench/train_speed.py times against kdedge, each run in its own child process:
a plain PyTorch loop (DataLoader + torchvision MNIST, as PyTorch's knowledge-distillation tutorial writes
it) and torchdistill's (configured by bench/torchdistill_hinton.yaml, loop as in its examples). Both load
the teacher kdedge trained and report {student_seconds, student_cpu_seconds, test_accuracy, train_loss,
teacher_test_accuracy}. `job` is train_speed.job_from_recipe's dict.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

YAML = Path(__file__).resolve().parent / "torchdistill_hinton.yaml"
STEPS_PER_EPOCH = 469  # ceil(60,000 / 128)


# -- models shared by the torchdistill and plain runs (same layer order as kdedge's `mlp`: same init) -----
class NeuralNetwork(nn.Module):
    """784-...-10 ReLU MLP written like PyTorch's quickstart tutorial. (N, 1, 28, 28) -> (N, 10)."""

    def __init__(
        self, hidden: list[int], dropout: float = 0.0, input_dropout: float = 0.0, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        width = 28 * 28
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.linear_relu_stack = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


def load_kdedge_weights(model: NeuralNetwork, path: Path) -> None:
    """kdedge's mlp is Sequential(Flatten, ...): its layer i is our linear_relu_stack[i - 1]."""
    state = {}
    for key, value in load_file(str(path)).items():
        index, rest = key.split(".", 1)
        state[f"linear_relu_stack.{int(index) - 1}.{rest}"] = value
    model.load_state_dict(state)


# -- the plain PyTorch loop (DataLoader + torchvision MNIST, as the tutorials write it) ----------------------
def train_kd_epoch(teacher, student, loader, optimizer, scheduler, job, device) -> float:
    """One epoch of PyTorch's knowledge_distillation_tutorial `train_knowledge_distillation`; mean loss."""
    ce_loss = nn.CrossEntropyLoss()
    T, soft_w = job["temperature"], job["alpha"]  # noqa: N806
    teacher.eval()
    student.train()
    running_loss = 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        student_logits = student(inputs)
        soft_targets = F.softmax(teacher_logits / T, dim=-1)
        soft_prob = F.log_softmax(student_logits / T, dim=-1)
        soft_targets_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0]
        soft_targets_loss = soft_targets_loss * T**2
        label_loss = ce_loss(student_logits, labels)
        loss = soft_w * soft_targets_loss + (1 - soft_w) * label_loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        running_loss += loss.item() * len(labels)
    return running_loss / len(loader.dataset)


def test_accuracy(model, loader, device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in loader:
            correct += (model(inputs.to(device)).argmax(1) == labels.to(device)).sum().item()
    return correct / len(loader.dataset)


def run_plain(job: dict, teacher_path: Path) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    device = torch.device(job["device"])
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(os.environ["KDEDGE_DATA"], train=True, download=False, transform=transform)
    test_set = datasets.MNIST(os.environ["KDEDGE_DATA"], train=False, download=False, transform=transform)
    train_loader = DataLoader(
        train_set, batch_size=job["batch_size"], shuffle=True, generator=torch.Generator().manual_seed(job["seed"])
    )
    test_loader = DataLoader(test_set, batch_size=1000)
    teacher = NeuralNetwork(**job["teacher_kwargs"]).to(device)
    load_kdedge_weights(teacher, teacher_path)
    torch.manual_seed(job["seed"])  # the student's init: same seed, same layer order as kdedge's
    student = NeuralNetwork(job["student_hidden"]).to(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    optimizer = torch.optim.SGD(
        student.parameters(), lr=job["lr"], momentum=job["momentum"], weight_decay=job["weight_decay"]
    )
    steps = job["student_epochs"] * len(train_loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(job["student_epochs"]):
        train_loss = train_kd_epoch(teacher, student, train_loader, optimizer, scheduler, job, device)
        accuracy = test_accuracy(student, test_loader, device)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "student_seconds": seconds,
        "student_cpu_seconds": cpu,
        "test_accuracy": accuracy,
        "train_loss": train_loss,
        "teacher_test_accuracy": test_accuracy(teacher, test_loader, device),
    }


# -- torchdistill, configured by bench/torchdistill_hinton.yaml, loop as in its examples/torchvision --------
def td_train_one_epoch(box, device, epoch: int, log_freq: int) -> float:
    """`train_one_epoch` of torchdistill's examples/torchvision/image_classification.py; mean loss."""
    from torchdistill.misc.log import MetricLogger, SmoothedValue

    metric_logger = MetricLogger(delimiter="  ")
    metric_logger.add_meter("lr", SmoothedValue(window_size=1, fmt="{value}"))
    metric_logger.add_meter("img/s", SmoothedValue(window_size=10, fmt="{value}"))
    loss_sum, seen = 0.0, 0
    batches = metric_logger.log_every(box.train_data_loader, log_freq, f"Epoch: [{epoch}]")
    for sample_batch, targets, supp_dict in batches:
        start_time = time.time()
        sample_batch, targets = sample_batch.to(device), targets.to(device)
        loss = box.forward_process(sample_batch, targets, supp_dict)
        box.post_forward_process(loss=loss)
        batch_size = sample_batch.shape[0]
        metric_logger.update(loss=loss.item(), lr=box.optimizer.param_groups[0]["lr"])
        metric_logger.meters["img/s"].update(batch_size / (time.time() - start_time))
        if torch.isnan(loss) or torch.isinf(loss):
            raise ValueError(f"The training loop was broken due to loss = {loss}")
        loss_sum, seen = loss_sum + metric_logger.meters["loss"].value * batch_size, seen + batch_size
    return loss_sum / seen


def check_same_job(config: dict, job: dict) -> None:
    """Refuse to time torchdistill on a different job than kdedge's recipe."""
    train = config["train"]
    kd = train["criterion"]["kwargs"]["sub_terms"]["kd"]["criterion"]["kwargs"]
    optimizer = train["optimizer"]["kwargs"]
    theirs = (
        train["train_data_loader"]["kwargs"]["batch_size"],
        optimizer["lr"],
        optimizer["momentum"],
        kd["temperature"],
        kd["beta"],
        round(1 - kd["alpha"], 6),
        config["models"]["student_model"]["kwargs"]["hidden"],
    )
    ours = (
        job["batch_size"],
        job["lr"],
        job["momentum"],
        job["temperature"],
        job["alpha"],
        job["alpha"],
        job["student_hidden"],
    )
    if theirs != ours or job["schedule"] != "cosine":
        raise SystemExit(f"{YAML.name} and {job['recipe']} differ: {theirs} vs {ours}")


def run_torchdistill(job: dict, teacher_path: Path) -> dict:
    from torchdistill.common import yaml_util
    from torchdistill.common.main_util import set_seed
    from torchdistill.core.distillation import get_distillation_box
    from torchdistill.models.registry import get_model, register_model

    register_model(key="hinton_mlp")(NeuralNetwork)
    set_seed(job["seed"])
    config = yaml_util.load_yaml_file(str(YAML))
    check_same_job(config, job)
    train_config, models = config["train"], config["models"]
    train_config["num_epochs"] = job["student_epochs"]
    train_config["scheduler"]["kwargs"]["T_max"] = job["student_epochs"] * STEPS_PER_EPOCH
    device = torch.device(job["device"])
    teacher = get_model(models["teacher_model"]["key"], **models["teacher_model"]["kwargs"]).to(device)
    load_kdedge_weights(teacher, teacher_path)
    teacher.eval()  # torchdistill never switches the teacher to eval mode: without this its dropout stays on
    set_seed(job["seed"])  # the student's init: same seed as kdedge's and the plain loop's
    student = get_model(models["student_model"]["key"], **models["student_model"]["kwargs"]).to(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    box = get_distillation_box(teacher, student, config["datasets"], train_config, device, None, False, 1)
    for epoch in range(box.num_epochs):
        box.pre_epoch_process(epoch=epoch)
        train_loss = td_train_one_epoch(box, device, epoch, train_config["log_freq"])
        accuracy = test_accuracy(student, box.val_data_loader, device)
        box.post_epoch_process()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "student_seconds": seconds,
        "student_cpu_seconds": cpu,
        "test_accuracy": accuracy,
        "train_loss": train_loss,
        "teacher_test_accuracy": test_accuracy(teacher, box.val_data_loader, device),
    }
