"""Timer: the time budget behind Trainer(max_time), carried across a resume."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from runtime import Trainer
from runtime.callbacks import ModelCheckpoint, Timer
from runtime.exceptions import MisconfigurationException
from runtime_models import TinyRegressor, loader


class Slow(TinyRegressor):
    def training_step(self, batch, batch_idx):
        time.sleep(0.01)
        return super().training_step(batch, batch_idx)


def trainer_with(tmp_path, callbacks=(), **args):
    return Trainer(callbacks=list(callbacks), default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, **args)


def test_max_time_is_a_timer_callback():
    trainer = Trainer(max_time={"minutes": 5}, enable_checkpointing=False)
    timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]
    assert len(timers) == 1 and timers[0].time_remaining() == 300


def test_a_given_timer_takes_precedence_over_max_time():
    timer = Timer(duration="00:00:01:00")
    trainer = Trainer(max_time={"minutes": 5}, callbacks=[timer], enable_checkpointing=False)
    assert [cb for cb in trainer.callbacks if isinstance(cb, Timer)] == [timer]


def test_the_duration_stops_fit_after_a_step(tmp_path):
    timer = Timer(duration=timedelta(seconds=0.15), verbose=False)
    trainer = trainer_with(tmp_path, [timer], max_epochs=100)
    trainer.fit(Slow(), loader())
    assert 0 < trainer.global_step < 800 and timer.time_elapsed() >= 0.15


def test_interval_epoch_stops_only_at_an_epoch_end(tmp_path):
    trainer = trainer_with(tmp_path, [Timer(duration=timedelta(seconds=0.01), interval="epoch", verbose=False)],
                           max_epochs=100)
    trainer.fit(Slow(), loader())
    assert trainer.global_step == 8


def test_elapsed_times_are_kept_per_stage(tmp_path):
    timer = Timer()
    trainer = trainer_with(tmp_path, [timer], max_epochs=1)
    trainer.fit(Slow(), loader(), loader(16))
    assert timer.time_elapsed("train") >= 0.08 and timer.time_elapsed("validate") > 0
    assert timer.time_elapsed("test") == 0 and timer.start_time("test") is None
    assert timer.time_remaining() is None


def test_a_resumed_run_continues_the_same_budget(tmp_path):
    directory = tmp_path / "c"
    first = Timer(duration=timedelta(seconds=10), verbose=False)
    trainer_with(tmp_path, [first, ModelCheckpoint(dirpath=directory, save_last=True)], max_epochs=1).fit(
        Slow(), loader())
    spent = first.time_elapsed()
    resumed = Timer(duration=timedelta(seconds=10), verbose=False)
    trainer = trainer_with(tmp_path, [resumed, ModelCheckpoint(dirpath=directory, save_last=True)], max_epochs=1)
    with pytest.warns(UserWarning, match="not empty"):
        trainer.fit(Slow(), loader(), ckpt_path="last")
    assert resumed.time_elapsed() == pytest.approx(spent, abs=0.05)


def test_a_resumed_run_with_the_budget_spent_stops_at_once(tmp_path):
    directory = tmp_path / "c"
    trainer_with(tmp_path, [Timer(), ModelCheckpoint(dirpath=directory, save_last=True)], max_epochs=1).fit(
        Slow(), loader())
    trainer = trainer_with(tmp_path, [Timer(duration=timedelta(seconds=0.01), verbose=False),
                                      ModelCheckpoint(dirpath=directory, save_last=True)], max_epochs=5)
    with pytest.warns(UserWarning, match="not empty"):
        trainer.fit(Slow(), loader(), ckpt_path="last")
    assert trainer.global_step == 8


@pytest.mark.parametrize(("kwargs", "match"), [({"duration": "1 hour"}, "DD:HH:MM:SS"),
                                               ({"interval": "batch"}, "step, epoch")])
def test_invalid_arguments_are_refused(kwargs, match):
    with pytest.raises(MisconfigurationException, match=match):
        Timer(**kwargs)
