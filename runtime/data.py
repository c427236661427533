"""Finding the dataloaders of a run and counting their batches."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from torch.utils.data import DataLoader, Sampler, SequentialSampler

from runtime.callbacks.callback import overrides
from runtime.exceptions import MisconfigurationException
from runtime.hooks import DataHooks
from runtime.seed import worker_init_function

_LOADER_METHODS = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader",
                   "predict": "predict_dataloader"}


def resolve_dataloaders(kind: str, given: Any, datamodule: Any, module: Any) -> list[Any]:
    """Explicit argument first, then the datamodule's method, then the module's own; [] when none."""
    method = _LOADER_METHODS[kind]
    if given is None:
        for source in (datamodule, module):
            if source is not None and (overrides(source, DataHooks, method) or method in vars(source)):
                given = getattr(source, method)()
                break
    if given is None:
        return []
    if isinstance(given, Mapping):
        raise MisconfigurationException(
            f"{method} returned a dict of loaders; this runtime takes one loader or a list of loaders."
        )
    loaders = list(given) if isinstance(given, (list, tuple)) else [given]
    for loader in loaders:
        if not hasattr(loader, "__iter__"):
            raise MisconfigurationException(
                f"{method} returned {type(loader).__name__}, which is not iterable; return a torch DataLoader."
            )
        _seed_workers_if_asked(loader)
    return loaders


def count_batches(loader: Any) -> float:
    try:
        return float(len(loader))
    except (TypeError, NotImplementedError):
        return math.inf


def limit_batches(available: float, limit: int | float | None, name: str) -> float:
    """Apply `limit_*_batches`: an int caps the count, a float takes that fraction."""
    if limit is None:
        return available
    if isinstance(limit, bool) or limit < 0:
        raise MisconfigurationException(f"{name}={limit!r} must be an int >= 0 or a float in [0.0, 1.0].")
    if isinstance(limit, int):
        return min(available, float(limit))
    if limit > 1.0:
        raise MisconfigurationException(f"{name}={limit} is a fraction above 1.0; use an int to cap batches.")
    if limit == 1.0:
        return available
    if math.isinf(available):
        raise MisconfigurationException(
            f"{name}={limit} is a fraction, but the loader has no length; use an int number of batches."
        )
    batches = int(available * limit)
    if batches == 0 and limit > 0:
        raise MisconfigurationException(
            f"{name}={limit} of {int(available)} batches is 0 batches; use a larger fraction or an int."
        )
    return float(batches)


def without_shuffle(loader: DataLoader) -> DataLoader:
    """The same loader reading its dataset in order (used by `overfit_batches`)."""
    if not isinstance(loader, DataLoader) or isinstance(loader.sampler, SequentialSampler):
        return loader
    return with_sampler(loader, SequentialSampler(loader.dataset))


def with_sampler(loader: DataLoader, sampler: Sampler) -> DataLoader:
    """The same loader, every setting kept, drawing its indices from `sampler`."""
    workers = loader.num_workers
    options: dict[str, Any] = {}
    if workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
        options["persistent_workers"] = loader.persistent_workers
    for name in ("pin_memory_device", "in_order"):
        if hasattr(loader, name):
            options[name] = getattr(loader, name)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        **options,
    )


def _seed_workers_if_asked(loader: Any) -> None:
    if os.environ.get("PL_SEED_WORKERS") == "1" and isinstance(loader, DataLoader):
        if loader.num_workers > 0 and loader.worker_init_fn is None:
            loader.worker_init_fn = worker_init_function
