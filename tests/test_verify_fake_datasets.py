"""The offline stand-ins for torchvision's downloadable datasets (`verify --fake-data`)."""

import random

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.mnist
from PIL import Image
from torchvision import transforms

from migrate import fake_datasets
from migrate.fake_datasets import DEFAULT_SIZE, SIZE_VARIABLE, offline_datasets

# name, constructor arguments, PIL mode, image size
STAND_INS = [
    ("MNIST", {"train": True, "download": True}, "L", (28, 28)),
    ("FashionMNIST", {"train": False}, "L", (28, 28)),
    ("KMNIST", {}, "L", (28, 28)),
    ("EMNIST", {"split": "letters"}, "L", (28, 28)),
    ("CIFAR10", {"train": True, "download": True}, "RGB", (32, 32)),
    ("CIFAR100", {"train": False}, "RGB", (32, 32)),
    ("SVHN", {"split": "test", "download": True}, "RGB", (32, 32)),
]
NAMES = [name for name, *_ in STAND_INS]


def build(name, root, **overrides):
    arguments = {**next(args for n, args, *_ in STAND_INS if n == name), **overrides}
    return getattr(fake_datasets, name)(root, **arguments)


@pytest.mark.parametrize("name, arguments, mode, size", STAND_INS, ids=NAMES)
def test_gives_pil_images_of_the_real_mode_and_size_with_int_targets(
    name, arguments, mode, size, tmp_path
):
    image, target = getattr(fake_datasets, name)(tmp_path, **arguments)[0]

    assert isinstance(image, Image.Image)
    assert (image.mode, image.size) == (mode, size)
    assert isinstance(target, int)


@pytest.mark.parametrize("name", NAMES)
def test_downloads_and_writes_nothing(name, tmp_path):
    build(name, tmp_path)

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "KMNIST", "EMNIST"])
def test_mnist_family_data_is_an_n_by_28_by_28_uint8_tensor_with_tensor_targets(name, tmp_path):
    dataset = build(name, tmp_path)

    assert dataset.data.dtype == torch.uint8
    assert dataset.data.shape == (DEFAULT_SIZE, 28, 28)
    assert isinstance(dataset.targets, torch.Tensor)
    assert int(dataset.targets.max()) < len(dataset.classes)


@pytest.mark.parametrize("name, classes", [("CIFAR10", 10), ("CIFAR100", 100)])
def test_cifar_data_is_an_n_by_32_by_32_by_3_uint8_array_with_list_targets(name, classes, tmp_path):
    dataset = build(name, tmp_path)

    assert isinstance(dataset.data, np.ndarray)
    assert (dataset.data.dtype, dataset.data.shape) == (np.uint8, (DEFAULT_SIZE, 32, 32, 3))
    assert isinstance(dataset.targets, list) and isinstance(dataset.targets[0], int)
    assert len(dataset.classes) == classes
    assert dataset.class_to_idx[dataset.classes[-1]] == classes - 1


def test_svhn_data_is_an_n_by_3_by_32_by_32_uint8_array_with_labels(tmp_path):
    dataset = build("SVHN", tmp_path)

    assert (dataset.data.dtype, dataset.data.shape) == (np.uint8, (DEFAULT_SIZE, 3, 32, 32))
    assert dataset.labels.dtype == np.int64
    assert set(dataset.labels.tolist()) <= set(range(10))


@pytest.mark.parametrize("name", NAMES)
def test_is_the_same_every_time(name, tmp_path):
    first, second = build(name, tmp_path), build(name, tmp_path)

    assert np.array_equal(np.asarray(first.data), np.asarray(second.data))
    assert np.array_equal(np.asarray(first[5][0]), np.asarray(second[5][0]))


def test_train_and_test_splits_differ(tmp_path):
    train, test = build("MNIST", tmp_path, train=True), build("MNIST", tmp_path, train=False)

    assert not torch.equal(train.data, test.data)


@pytest.mark.parametrize("name", NAMES)
def test_never_touches_the_global_random_number_generators(name, tmp_path):
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())

    dataset = build(name, tmp_path, transform=transforms.ToTensor())
    dataset[0]

    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]


def test_applies_transform_and_target_transform(tmp_path):
    dataset = build(
        "CIFAR10", tmp_path, transform=transforms.ToTensor(), target_transform=lambda t: -t
    )

    image, target = dataset[0]

    assert image.shape == (3, 32, 32)
    assert target == -dataset.targets[0]


def test_the_sample_count_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(SIZE_VARIABLE, "12")

    assert len(build("MNIST", tmp_path)) == 12


def test_a_bad_sample_count_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(SIZE_VARIABLE, "lots")

    with pytest.raises(ValueError, match=SIZE_VARIABLE):
        build("MNIST", tmp_path)


def test_offline_datasets_patches_both_import_paths_and_restores_them():
    real = torchvision.datasets.MNIST

    with offline_datasets():
        from torchvision.datasets import MNIST

        assert MNIST is fake_datasets.MNIST
        assert torchvision.datasets.mnist.MNIST is fake_datasets.MNIST

    assert torchvision.datasets.MNIST is real
    assert torchvision.datasets.mnist.MNIST is real
