"""Checkpoint files: Lightning's keys, plain contents that load with weights_only=True, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from runtime import LightningDataModule, Trainer
from runtime.callbacks import (
    Callback,
    EarlyStopping,
    GradientAccumulationScheduler,
    LearningRateMonitor,
    ModelCheckpoint,
)
from runtime.checkpoint import atomic_save
from runtime.exceptions import MisconfigurationException
from runtime.loggers import CSVLogger
from runtime_models import TinyRegressor, loader

LIGHTNING_KEYS = {"epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
                  "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters"}


class CountingCallback(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state_dict):
        self.batches = state_dict["batches"]


class Data(LightningDataModule):
    def __init__(self, batch_size: int = 8, root: Path = Path("data")) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.epochs_served = 0

    def train_dataloader(self):
        self.epochs_served += 1
        return loader(batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return loader(16)

    def state_dict(self):
        return {"epochs_served": self.epochs_served}

    def load_state_dict(self, state_dict):
        self.epochs_served = state_dict["epochs_served"]


class PlateauRegressor(TinyRegressor):
    def __init__(self, lr: float = 0.1, dtype: torch.dtype = torch.float32, sizes: tuple = (4, 1),
                 options: dict | None = None) -> None:
        super().__init__(lr)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


def rich_fit(tmp_path) -> tuple[Trainer, list[Path]]:
    """A fit with every callback that keeps state; returns the checkpoint files it wrote."""
    callbacks = [
        CountingCallback(),
        ModelCheckpoint(dirpath=tmp_path / "best", monitor="val_loss", save_top_k=2, save_last=True),
        ModelCheckpoint(dirpath=tmp_path / "steps", every_n_train_steps=3, save_top_k=-1),
        EarlyStopping(monitor="val_loss", patience=5),
        LearningRateMonitor(log_momentum=True),
        GradientAccumulationScheduler({1: 2}),
    ]
    trainer = Trainer(max_epochs=3, max_time={"hours": 1}, callbacks=callbacks, logger=CSVLogger(tmp_path),
                      default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False)
    module = PlateauRegressor(options={"depth": [1, 2], "path": Path("x")})
    trainer.fit(module, datamodule=Data())
    trainer.save_checkpoint(tmp_path / "manual.ckpt")
    trainer.save_checkpoint(tmp_path / "weights.ckpt", weights_only=True)
    return trainer, sorted(tmp_path.rglob("*.ckpt"))


@pytest.fixture(scope="module")
def rich_run(tmp_path_factory):
    return rich_fit(tmp_path_factory.mktemp("rich"))


def test_every_checkpoint_the_runtime_writes_loads_with_weights_only(rich_run):
    _, files = rich_run
    assert len(files) >= 8
    for path in files:
        assert torch.load(path, weights_only=True)["state_dict"], path


def test_a_checkpoint_has_lightnings_keys_plus_rng_and_loop_position(rich_run):
    trainer, _ = rich_run
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert LIGHTNING_KEYS | {"datamodule_hyper_parameters", "datamodule_hparams_name", "Data", "rng_states",
                             "runtime_fit_loop"} <= checkpoint.keys()
    assert checkpoint["pytorch-lightning_version"] == "2.6.6"
    assert {"python", "numpy", "torch"} <= checkpoint["rng_states"].keys()
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] == 8 + 4 + 4
    assert checkpoint["Data"] == {"epochs_served": 1}


def test_callback_states_are_saved_under_their_state_keys(rich_run):
    trainer, _ = rich_run
    states = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)["callbacks"]
    assert states["CountingCallback"] == {"batches": 24}
    assert states["EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"]["patience"] == 5
    assert states["Timer"]["time_elapsed"]["train"] > 0
    assert sum(key.startswith("ModelCheckpoint{") for key in states) == 2


def test_hyperparameters_are_stored_as_plain_values(rich_run):
    trainer, _ = rich_run
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert checkpoint["hyper_parameters"] == {"lr": 0.1, "dtype": torch.float32, "sizes": (4, 1),
                                              "options": {"depth": [1, 2], "path": "x"}}
    assert checkpoint["datamodule_hyper_parameters"] == {"batch_size": 8, "root": "data"}


def test_a_hyperparameter_that_is_not_plain_is_left_out_with_a_warning(tmp_path):
    class WithActivation(TinyRegressor):
        def __init__(self, activation: type = nn.ReLU) -> None:
            super().__init__()

    trainer = Trainer(max_steps=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(WithActivation(), loader())
    with pytest.warns(UserWarning, match=r"'activation' .*load_from_checkpoint\(path, activation=...\)"):
        trainer.save_checkpoint(tmp_path / "a.ckpt")
    assert torch.load(tmp_path / "a.ckpt", weights_only=True)["hyper_parameters"] == {"lr": 0.1}


def test_weights_only_checkpoints_hold_no_training_state(rich_run):
    trainer, _ = rich_run
    checkpoint = torch.load(Path(trainer.default_root_dir) / "weights.ckpt", weights_only=True)
    assert not {"optimizer_states", "lr_schedulers", "callbacks", "rng_states"} & checkpoint.keys()
    assert {"state_dict", "loops", "hyper_parameters"} <= checkpoint.keys()


def test_save_checkpoint_before_fit_names_the_fix(tmp_path):
    with pytest.raises(MisconfigurationException, match="after trainer.fit"):
        Trainer(default_root_dir=tmp_path).save_checkpoint(tmp_path / "x.ckpt")


# --- atomic writes -------------------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, target)

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_keyboard_interrupt_during_a_write_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, target)
    monkeypatch.setattr(torch, "save", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1} and os.listdir(tmp_path) == ["last.ckpt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_save({"x": 1}, tmp_path / "a.ckpt")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o644


def test_atomic_save_creates_missing_directories(tmp_path):
    atomic_save({"x": 1}, tmp_path / "deep" / "er" / "a.ckpt")
    assert torch.load(tmp_path / "deep" / "er" / "a.ckpt", weights_only=True) == {"x": 1}
