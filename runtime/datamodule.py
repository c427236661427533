"""`LightningDataModule`: the datasets and loaders of a run, kept apart from the model."""

from __future__ import annotations

from typing import Any

from runtime.hooks import CheckpointHooks, DataHooks
from runtime.hparams import HyperparametersMixin


class LightningDataModule(HyperparametersMixin, DataHooks, CheckpointHooks):
    name: str | None = None

    def __init__(self) -> None:
        self.trainer: Any = None

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (e.g. a stateful sampler's position); empty by default."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    @classmethod
    def from_datasets(
        cls,
        train_dataset: Any = None,
        val_dataset: Any = None,
        test_dataset: Any = None,
        predict_dataset: Any = None,
        batch_size: int = 1,
        num_workers: int = 0,
        **dataloader_kwargs: Any,
    ) -> LightningDataModule:
        from torch.utils.data import DataLoader

        def loader(dataset: Any, shuffle: bool) -> DataLoader:
            return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                              **dataloader_kwargs)

        datamodule = cls()
        if train_dataset is not None:
            datamodule.train_dataloader = lambda: loader(train_dataset, True)  # type: ignore[method-assign]
        if val_dataset is not None:
            datamodule.val_dataloader = lambda: loader(val_dataset, False)  # type: ignore[method-assign]
        if test_dataset is not None:
            datamodule.test_dataloader = lambda: loader(test_dataset, False)  # type: ignore[method-assign]
        if predict_dataset is not None:
            datamodule.predict_dataloader = lambda: loader(predict_dataset, False)  # type: ignore[method-assign]
        return datamodule

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             **kwargs: Any) -> LightningDataModule:
        from runtime.checkpoint import load_datamodule_from_checkpoint

        return load_datamodule_from_checkpoint(cls, checkpoint_path, map_location, kwargs)
