"""ModelCheckpoint: Lightning's triggers, file names, top-k bookkeeping, state and errors."""

from __future__ import annotations

import os
import types
from datetime import timedelta

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import EarlyStopping, ModelCheckpoint
from runtime.exceptions import MisconfigurationException
from runtime.loggers import CSVLogger
from runtime_models import TinyRegressor, loader

SCRIPT = (0.5, 0.3, 0.4, 0.1, 0.2)  # val_loss per epoch: best is epoch 3, then 4


class ScriptedValLoss(TinyRegressor):
    """val_loss follows SCRIPT, one value per epoch, so the best epochs are known in advance."""

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(SCRIPT[self.current_epoch]))


def fit(tmp_path, callbacks=None, module=None, max_epochs=5, ckpt_path=None, **trainer_args):
    args = {"default_root_dir": tmp_path, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0, **trainer_args}
    trainer = Trainer(max_epochs=max_epochs, callbacks=callbacks, **args)
    trainer.fit(module or ScriptedValLoss(), loader(), loader(16), ckpt_path=ckpt_path)
    return trainer


def names(directory) -> list[str]:
    return sorted(os.listdir(directory))


# --- where and under which name ------------------------------------------------------------------------
def test_checkpointing_is_on_by_default_and_keeps_the_latest_epoch(tmp_path):
    trainer = fit(tmp_path)
    assert names(tmp_path / "checkpoints") == ["epoch=4-step=40.ckpt"]
    assert trainer.checkpoint_callback.best_model_path == str(tmp_path / "checkpoints" / "epoch=4-step=40.ckpt")


def test_with_a_logger_checkpoints_go_into_the_logger_version_directory(tmp_path):
    fit(tmp_path, logger=CSVLogger(tmp_path), max_epochs=1)
    assert names(tmp_path / "lightning_logs" / "version_0" / "checkpoints") == ["epoch=0-step=8.ckpt"]


def test_enable_checkpointing_false_adds_no_checkpoint_callback(tmp_path):
    trainer = fit(tmp_path, enable_checkpointing=False, max_epochs=1)
    assert trainer.checkpoint_callback is None and not (tmp_path / "checkpoints").exists()


def test_filename_template_formats_logged_metrics(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", filename="{epoch}-{val_loss:.2f}", monitor="val_loss")])
    assert names(tmp_path / "c") == ["epoch=3-val_loss=0.10.ckpt"]


def test_auto_insert_metric_name_false_leaves_the_template_as_written(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", filename="e{epoch:02d}_{val_loss:.1f}",
                                   monitor="val_loss", auto_insert_metric_name=False)])
    assert names(tmp_path / "c") == ["e03_0.1.ckpt"]


def test_a_name_taken_by_another_file_gets_a_version_suffix(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "epoch=0-step=8.ckpt").write_bytes(b"someone else's")
    (directory / "last.ckpt").write_bytes(b"someone else's")
    with pytest.warns(UserWarning, match="not empty"):
        fit(tmp_path, [ModelCheckpoint(dirpath=directory, save_top_k=-1, save_last=True)], max_epochs=1)
    assert names(directory) == ["epoch=0-step=8-v1.ckpt", "epoch=0-step=8.ckpt", "last-v1.ckpt", "last.ckpt"]


# --- top-k -------------------------------------------------------------------------------------------------
def test_top_k_by_a_minimised_metric_keeps_the_k_best(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_top_k=2)
    fit(tmp_path, [callback])
    best, second = str(tmp_path / "c" / "epoch=3-step=32.ckpt"), str(tmp_path / "c" / "epoch=4-step=40.ckpt")
    assert names(tmp_path / "c") == ["epoch=3-step=32.ckpt", "epoch=4-step=40.ckpt"]
    assert callback.best_model_path == best and float(callback.best_model_score) == pytest.approx(0.1)
    assert callback.best_k_models.keys() == {best, second}
    assert callback.kth_best_model_path == second and float(callback.kth_value) == pytest.approx(0.2)


def test_top_k_with_mode_max_keeps_the_largest(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_top_k=2, mode="max")])
    assert names(tmp_path / "c") == ["epoch=0-step=8.ckpt", "epoch=2-step=24.ckpt"]


def test_save_top_k_minus_one_keeps_every_checkpoint(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=-1)])
    assert len(names(tmp_path / "c")) == 5


def test_save_top_k_zero_with_save_last_keeps_only_last(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=0, save_last=True)
    fit(tmp_path, [callback])
    assert names(tmp_path / "c") == ["last.ckpt"]
    assert callback.last_model_path == str(tmp_path / "c" / "last.ckpt")
    assert torch.load(callback.last_model_path, weights_only=True)["global_step"] == 40


def test_top_k_continues_across_a_resume(tmp_path):
    directory = tmp_path / "c"
    fit(tmp_path, [ModelCheckpoint(dirpath=directory, monitor="val_loss", save_top_k=2, save_last=True)],
        max_epochs=3)
    assert names(directory) == ["epoch=1-step=16.ckpt", "epoch=2-step=24.ckpt", "last.ckpt"]
    with pytest.warns(UserWarning, match="not empty"):
        fit(tmp_path, [ModelCheckpoint(dirpath=directory, monitor="val_loss", save_top_k=2, save_last=True)],
            ckpt_path="last")
    assert names(directory) == ["epoch=3-step=32.ckpt", "epoch=4-step=40.ckpt", "last.ckpt"]


def test_the_checkpoint_a_run_resumed_from_is_never_deleted(tmp_path):
    directory = tmp_path / "c"
    fit(tmp_path, [ModelCheckpoint(dirpath=directory)], max_epochs=1)
    with pytest.warns(UserWarning, match="not empty"):
        fit(tmp_path, [ModelCheckpoint(dirpath=directory)], max_epochs=2, ckpt_path=directory / "epoch=0-step=8.ckpt")
    assert names(directory) == ["epoch=0-step=8.ckpt", "epoch=1-step=16.ckpt"]


# --- triggers ----------------------------------------------------------------------------------------------
def test_every_n_epochs_saves_at_every_nth_epoch(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=-1, every_n_epochs=2)])
    assert names(tmp_path / "c") == ["epoch=1-step=16.ckpt", "epoch=3-step=32.ckpt"]


def test_every_n_train_steps_saves_at_every_nth_optimizer_step(tmp_path):
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=-1, every_n_train_steps=12)], max_epochs=3)
    assert names(tmp_path / "c") == ["epoch=1-step=12.ckpt", "epoch=2-step=24.ckpt"]


def test_train_time_interval_saves_when_the_interval_has_passed(tmp_path, monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr("runtime.callbacks.model_checkpoint.time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=-1, train_time_interval=timedelta(seconds=3))],
        max_epochs=1)
    # The clock reads 0 at train start and ticks once per batch end: 3 s have passed at steps 3 and 6.
    assert names(tmp_path / "c") == ["epoch=0-step=3.ckpt", "epoch=0-step=6.ckpt"]


def test_save_weights_only_writes_no_training_state_and_fit_refuses_to_resume_from_it(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", save_weights_only=True)
    fit(tmp_path, [callback], max_epochs=1)
    checkpoint = torch.load(callback.best_model_path, weights_only=True)
    assert "state_dict" in checkpoint and "optimizer_states" not in checkpoint and "callbacks" not in checkpoint
    with pytest.raises(MisconfigurationException, match="weights only"):
        fit(tmp_path / "again", max_epochs=2, ckpt_path=callback.best_model_path)


def test_a_metric_logged_in_the_module_on_train_epoch_end_can_be_monitored(tmp_path):
    class LogsAtEpochEnd(TinyRegressor):
        def on_train_epoch_end(self):
            self.log("epoch_score", torch.tensor(float(self.current_epoch)))

    callback = ModelCheckpoint(dirpath=tmp_path / "c", monitor="epoch_score", mode="max")
    trainer = Trainer(max_epochs=2, callbacks=[callback], default_root_dir=tmp_path, logger=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(LogsAtEpochEnd(), loader())
    assert names(tmp_path / "c") == ["epoch=1-step=16.ckpt"]


def test_checkpoint_callbacks_run_after_the_others_so_saved_states_are_current(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=10)
    callback = ModelCheckpoint(dirpath=tmp_path / "c", save_top_k=-1)
    trainer = fit(tmp_path, [callback, stopper])
    assert trainer.callbacks.index(callback) > trainer.callbacks.index(stopper)
    saved = torch.load(tmp_path / "c" / "epoch=2-step=24.ckpt", weights_only=True)["callbacks"][stopper.state_key]
    assert saved["wait_count"] == 1 and float(saved["best_score"]) == pytest.approx(0.3)


# --- state -------------------------------------------------------------------------------------------------
def test_state_key_is_lightnings(tmp_path):
    assert ModelCheckpoint().state_key == (
        "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
        "'train_time_interval': None}"
    )


def test_state_round_trips_through_the_checkpoint(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_top_k=2, save_last=True)
    fit(tmp_path, [callback])
    saved = torch.load(callback.last_model_path, weights_only=True)["callbacks"][callback.state_key]
    restored = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_top_k=2, save_last=True)
    restored.load_state_dict(saved)
    assert restored.state_dict().keys() == callback.state_dict().keys()
    assert restored.best_model_path == callback.best_model_path
    assert restored.best_k_models.keys() == callback.best_k_models.keys()


def test_a_changed_dirpath_restores_only_the_best_model_path(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_top_k=2)
    fit(tmp_path, [callback], max_epochs=2)
    moved = ModelCheckpoint(dirpath=tmp_path / "elsewhere", monitor="val_loss", save_top_k=2)
    with pytest.warns(UserWarning, match="dirpath has changed"):
        moved.load_state_dict(callback.state_dict())
    assert moved.best_model_path == callback.best_model_path and moved.best_k_models == {}


# --- misuse ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"save_top_k": 2}, "no quantity to rank"),
    ({"save_top_k": -2}, "save_top_k=-2"),
    ({"mode": "maximum"}, "'min' or 'max'"),
    ({"every_n_epochs": 2, "every_n_train_steps": 10}, "mutually exclusive"),
    ({"every_n_train_steps": -1}, "every_n_train_steps=-1"),
    ({"save_last": "link"}, "save_last='link'"),
])
def test_invalid_arguments_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(MisconfigurationException, match=match):
        ModelCheckpoint(**kwargs)


def test_a_checkpoint_callback_with_enable_checkpointing_false_is_refused():
    with pytest.raises(MisconfigurationException, match="enable_checkpointing=False"):
        Trainer(callbacks=[ModelCheckpoint()], enable_checkpointing=False)


def test_monitoring_a_key_never_logged_lists_the_logged_keys_and_their_hooks(tmp_path):
    with pytest.raises(MisconfigurationException) as error:
        fit(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_acc")])
    message = str(error.value)
    assert "monitor='val_acc'" in message
    assert "'val_loss' (validation_step)" in message and "'train_loss' (training_step)" in message
