"""Classification metrics on logits (N, C) and labels (N,); all return plain Python / numpy values. Torch-free:
torch tensors are accepted (converted through .cpu().numpy()) but torch is never imported here, so bench and
predict score exported files on devices without it."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def quadratic_weighted_kappa(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights (APTOS 2019's metric): 1 - sum(W*O) / sum(W*E),
    W_ij = (i-j)^2 / (C-1)^2, O the confusion matrix, E the outer product of its marginals / N."""
    observed = confusion_matrix(predicted, labels, num_classes).astype(np.float64)
    grades = np.arange(num_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2 / max(num_classes - 1, 1) ** 2
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    denominator = (weights * expected).sum()
    return 1.0 if denominator == 0 else float(1 - (weights * observed).sum() / denominator)


def as_numpy(values: Any) -> np.ndarray:
    """A numpy array of a numpy array, a list, or a torch tensor (any device; bf16 / fp16 become float32)."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach()
        values = values.float() if values.is_floating_point() else values
        return values.cpu().numpy()
    return np.asarray(values)


def classification_report(logits: Any, labels: Any) -> dict:
    """accuracy, errors, per-class errors and QWK for logits (N, C) vs labels (N,) (numpy or torch)."""
    logits_np, labels_np = as_numpy(logits), as_numpy(labels)
    num_classes = logits_np.shape[1]
    predicted = logits_np.argmax(1)
    wrong = predicted != labels_np
    per_class_errors = np.bincount(labels_np[wrong], minlength=num_classes)
    return {
        "accuracy": float(1 - wrong.mean()) if len(wrong) else 0.0,
        "errors": int(wrong.sum()),
        "count": int(len(wrong)),
        "per_class_errors": per_class_errors.tolist(),
        "qwk": quadratic_weighted_kappa(predicted, labels_np, num_classes),
        "confusion": confusion_matrix(predicted, labels_np, num_classes).tolist(),  # rows true, cols pred.
    }


def agreement(logits_a: Any, logits_b: Any) -> float:
    """Fraction of rows where two models' top-1 classes agree (logits (N, C), numpy or torch)."""
    return float((as_numpy(logits_a).argmax(1) == as_numpy(logits_b).argmax(1)).mean())
