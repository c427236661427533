"""Offline stand-ins for torchvision's downloadable datasets.

With them a conversion can be verified before the data is at hand, and tests run without
a network. Each stand-in subclasses the real dataset and replaces only the loading:
same constructor arguments, same `__getitem__` (so the same PIL images and target types),
same `.data`/`.targets`/`.classes` layout, but a few hundred to a few thousand synthetic
samples instead of a download.

The samples are a fixed template per class plus noise, so a model can learn something.
They come from a private numpy Generator seeded by the dataset's name and split: the same
on every run, and the global RNGs a script seeds and draws from are never touched.

`MIGRATE_FAKE_DATA_SIZE` sets the number of samples in every split (default 1000).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.datasets
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.mnist as tv_mnist
import torchvision.datasets.svhn as tv_svhn
from torchvision.datasets.utils import verify_str_arg
from torchvision.datasets.vision import VisionDataset

SIZE_VARIABLE = "MIGRATE_FAKE_DATA_SIZE"
DEFAULT_SIZE = 1000

# fmt: off
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]

CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
    "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]
# fmt: on


def sample_count() -> int:
    value = os.environ.get(SIZE_VARIABLE, str(DEFAULT_SIZE))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SIZE_VARIABLE} must be a positive integer, not {value!r}")
    return int(value)


def _generator(*names: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join(names).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def synthetic_images(
    name: str, split: str, shape: tuple[int, ...], labels: range
) -> tuple[np.ndarray, np.ndarray]:
    """`sample_count()` uint8 images of `shape` and their int64 labels drawn from `labels`.

    The class templates depend on the name only, so train and test splits agree on what
    each class looks like.
    """
    templates = _generator(name, "templates").uniform(0, 255, size=(len(labels), *shape))
    rng = _generator(name, split)
    count = sample_count()
    classes = rng.integers(0, len(labels), size=count)
    noise = rng.uniform(0, 255, size=(count, *shape))
    images = (0.6 * templates[classes] + 0.4 * noise).astype(np.uint8)
    return images, np.asarray(labels)[classes].astype(np.int64)


def _init_vision(
    dataset: VisionDataset,
    root: str | Path,
    transform: Callable | None,
    target_transform: Callable | None,
) -> None:
    """Skips the real class's __init__, which would look for files or download them."""
    VisionDataset.__init__(dataset, root, transform=transform, target_transform=target_transform)


class _MnistFamily:
    """The loading shared by the MNIST-format stand-ins: N x 28 x 28 uint8 tensor data."""

    train: bool
    data: torch.Tensor
    targets: torch.Tensor

    def _load_synthetic(self, name: str, labels: range) -> None:
        split = "train" if self.train else "test"
        images, targets = synthetic_images(name, split, (28, 28), labels)
        self.data = torch.from_numpy(images)
        self.targets = torch.from_numpy(targets)

    def download(self) -> None:
        """Nothing to download."""


class MNIST(_MnistFamily, tv_mnist.MNIST):
    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        _init_vision(self, root, transform, target_transform)
        self.train = train
        self._load_synthetic(type(self).__name__, range(len(self.classes)))


class FashionMNIST(MNIST, tv_mnist.FashionMNIST):
    pass


class KMNIST(MNIST, tv_mnist.KMNIST):
    pass


class EMNIST(_MnistFamily, tv_mnist.EMNIST):
    def __init__(
        self,
        root: str | Path,
        split: str,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        self.split = verify_str_arg(split, "split", self.splits)
        self.training_file = self._training_file(split)
        self.test_file = self._test_file(split)
        _init_vision(self, root, transform, target_transform)
        self.train = train
        self.classes = self.classes_split_dict[self.split]
        # "letters" labels run from 1 to 26; class 0 is the unused "N/A".
        first_label = 1 if self.split == "letters" else 0
        self._load_synthetic(f"EMNIST-{self.split}", range(first_label, len(self.classes)))


class CIFAR10(tv_cifar.CIFAR10):
    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        _init_vision(self, root, transform, target_transform)
        self.train = train
        self.classes = list(self._class_names)
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        split = "train" if train else "test"
        images, targets = synthetic_images(
            type(self).__name__, split, (32, 32, 3), range(len(self.classes))
        )
        self.data = images
        self.targets = targets.tolist()

    _class_names = CIFAR10_CLASSES

    def download(self) -> None:
        """Nothing to download."""


class CIFAR100(CIFAR10, tv_cifar.CIFAR100):
    _class_names = CIFAR100_CLASSES


class SVHN(tv_svhn.SVHN):
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        _init_vision(self, root, transform, target_transform)
        self.split = verify_str_arg(split, "split", tuple(self.split_list))
        self.data, self.labels = synthetic_images("SVHN", self.split, (3, 32, 32), range(10))

    def download(self) -> None:
        """Nothing to download."""


STAND_INS: dict[str, tuple[Any, type]] = {
    "MNIST": (tv_mnist, MNIST),
    "FashionMNIST": (tv_mnist, FashionMNIST),
    "KMNIST": (tv_mnist, KMNIST),
    "EMNIST": (tv_mnist, EMNIST),
    "CIFAR10": (tv_cifar, CIFAR10),
    "CIFAR100": (tv_cifar, CIFAR100),
    "SVHN": (tv_svhn, SVHN),
}
"""Dataset name -> (the torchvision module that defines it, its stand-in)."""


@contextmanager
def offline_datasets() -> Iterator[None]:
    """Swaps the stand-ins in for the block, restoring the real classes afterwards.

    Both `torchvision.datasets.MNIST` and `torchvision.datasets.mnist.MNIST` are replaced,
    so `from torchvision.datasets import MNIST` and `datasets.MNIST` both get the stand-in.
    """
    originals = {name: getattr(module, name) for name, (module, _) in STAND_INS.items()}
    try:
        for name, (module, stand_in) in STAND_INS.items():
            setattr(module, name, stand_in)
            setattr(torchvision.datasets, name, stand_in)
        yield
    finally:
        for name, (module, _) in STAND_INS.items():
            setattr(module, name, originals[name])
            setattr(torchvision.datasets, name, originals[name])
