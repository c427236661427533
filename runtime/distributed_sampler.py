"""Giving each rank its own share of a DataLoader, as `Trainer(use_distributed_sampler=True)` does in Lightning."""

from __future__ import annotations

from typing import Any

from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from runtime.data import with_sampler
from runtime.exceptions import MisconfigurationException


def distribute_loader(loader: Any, num_replicas: int, rank: int, shuffle: bool | None, seed: int) -> Any:
    """The same loader reading every `num_replicas`-th sample from `rank` on, through a `DistributedSampler`.

    `shuffle=None` keeps the loader's own choice (a RandomSampler shuffles). A shuffled order
    comes from `seed` and the epoch (the loop calls `set_epoch`), so every rank draws the same
    permutation and takes its own part of it. Ranks get equally many samples: the sampler
    repeats a few when the dataset does not divide evenly, as Lightning's does. Loaders that
    already shard (a DistributedSampler, an IterableDataset) and iterables that are not
    DataLoaders are returned unchanged.
    """
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    _check_rebuildable(loader)
    if shuffle is None:
        shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
    return with_sampler(loader, sampler)


def _check_rebuildable(loader: DataLoader) -> None:
    """Only the samplers whose meaning is known can be swapped; anything custom must shard itself."""
    fix = ("Pass Trainer(use_distributed_sampler=False) and give each rank its own share (for example with "
           "torch.utils.data.distributed.DistributedSampler), or convert with `migrate convert --target lightning`.")
    if type(loader) is not DataLoader:
        raise MisconfigurationException(
            f"The {type(loader).__name__} (a DataLoader subclass) cannot be rebuilt with a DistributedSampler. {fix}"
        )
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        raise MisconfigurationException(
            f"The loader's batch_sampler {type(batch_sampler).__name__} cannot be split across ranks. {fix}"
        )
    sampler = loader.sampler
    plain_random = (type(sampler) is RandomSampler and not sampler.replacement
                    and sampler.num_samples == len(sampler.data_source))
    if type(sampler) is not SequentialSampler and not plain_random:
        raise MisconfigurationException(
            f"The loader's sampler {type(sampler).__name__} cannot be split across ranks. {fix}"
        )
