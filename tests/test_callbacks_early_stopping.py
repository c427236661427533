"""EarlyStopping: Lightning's stopping rules, min_epochs, state across a resume, and errors."""

from __future__ import annotations

import math

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import EarlyStopping, ModelCheckpoint
from runtime.exceptions import MisconfigurationException
from runtime_models import TinyRegressor, loader


class ScriptedValLoss(TinyRegressor):
    """val_loss follows a script, one value per epoch (the last value repeats)."""

    def __init__(self, script=(1.0, 0.9, 0.95, 0.97, 0.99, 1.0, 1.0, 1.0)):
        super().__init__()
        self.script = script

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(self.script[min(self.current_epoch, len(self.script) - 1)]))


def fit(tmp_path, stopper, script=None, max_epochs=8, ckpt_path=None, **trainer_args):
    args = {"default_root_dir": tmp_path, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0, **trainer_args}
    trainer = Trainer(max_epochs=max_epochs, callbacks=[stopper, *args.pop("callbacks", [])], **args)
    module = ScriptedValLoss(script) if script is not None else ScriptedValLoss()
    trainer.fit(module, loader(), loader(16), ckpt_path=ckpt_path)
    return trainer


def test_stops_after_patience_epochs_without_improvement(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    trainer = fit(tmp_path, stopper)
    assert trainer.current_epoch == 5 and stopper.stopped_epoch == 4
    assert float(stopper.best_score) == pytest.approx(0.9)


def test_an_improvement_smaller_than_min_delta_does_not_count(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.2)
    trainer = fit(tmp_path, stopper, script=(1.0, 0.9))
    assert trainer.current_epoch == 2


def test_mode_max_waits_for_increases(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", mode="max", patience=2)
    trainer = fit(tmp_path, stopper, script=(0.1, 0.2, 0.3, 0.25, 0.2))
    assert trainer.current_epoch == 5


def test_stopping_threshold_stops_as_soon_as_it_is_reached(tmp_path):
    trainer = fit(tmp_path, EarlyStopping(monitor="val_loss", stopping_threshold=0.5), script=(0.9, 0.6, 0.4, 0.3))
    assert trainer.current_epoch == 3


def test_divergence_threshold_stops_when_the_metric_runs_away(tmp_path):
    trainer = fit(tmp_path, EarlyStopping(monitor="val_loss", divergence_threshold=5.0), script=(1.0, 2.0, 9.0))
    assert trainer.current_epoch == 3


def test_a_non_finite_metric_stops_unless_check_finite_is_off(tmp_path):
    script = (1.0, math.nan, 0.5, 0.4)
    assert fit(tmp_path / "a", EarlyStopping(monitor="val_loss"), script=script, max_epochs=4).current_epoch == 2
    assert fit(tmp_path / "b", EarlyStopping(monitor="val_loss", check_finite=False), script=script,
               max_epochs=4).current_epoch == 4


def test_min_epochs_holds_even_when_early_stopping_asks_to_stop(tmp_path):
    trainer = fit(tmp_path, EarlyStopping(monitor="val_loss", patience=1), script=(1.0, 2.0), min_epochs=4)
    assert trainer.current_epoch == 4


def test_with_mid_epoch_validation_it_checks_after_each_validation(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    trainer = fit(tmp_path, stopper, script=(1.0, 2.0, 2.0), val_check_interval=0.5)
    assert stopper._check_on_train_epoch_end is False
    # Validation twice per epoch: epoch 0 sets the best and waits once; epoch 1's first check stops.
    assert trainer.current_epoch == 2 and trainer.global_step == 12


def test_verbose_reports_why_it_stopped(tmp_path, caplog):
    with caplog.at_level("INFO", logger="runtime"):
        fit(tmp_path, EarlyStopping(monitor="val_loss", patience=1, verbose=True), script=(1.0, 2.0))
    assert "did not improve in the last 1 records" in caplog.text


def test_its_state_is_saved_and_a_resumed_run_stops_at_the_same_epoch(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    directory = tmp_path / "c"
    fit(tmp_path, stopper, max_epochs=3, callbacks=[ModelCheckpoint(dirpath=directory, save_last=True)])
    assert stopper.wait_count == 1
    resumed = EarlyStopping(monitor="val_loss", patience=3)
    with pytest.warns(UserWarning, match="not empty"):
        trainer = fit(tmp_path, resumed, ckpt_path="last",
                      callbacks=[ModelCheckpoint(dirpath=directory, save_last=True)])
    assert trainer.current_epoch == 5 and resumed.stopped_epoch == 4


def test_state_key_is_lightnings():
    assert EarlyStopping(monitor="val_loss").state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"


def test_monitoring_a_key_never_logged_lists_the_logged_keys_and_their_hooks(tmp_path):
    with pytest.raises(RuntimeError) as error:
        fit(tmp_path, EarlyStopping(monitor="val_accuracy"))
    assert "'val_loss' (validation_step)" in str(error.value) and "strict=False" in str(error.value)


def test_strict_false_skips_a_missing_monitor(tmp_path):
    assert fit(tmp_path, EarlyStopping(monitor="val_accuracy", strict=False), max_epochs=2).current_epoch == 2


def test_an_unknown_mode_is_refused():
    with pytest.raises(MisconfigurationException, match="'min' or 'max'"):
        EarlyStopping(monitor="val_loss", mode="lowest")
