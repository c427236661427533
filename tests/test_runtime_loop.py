"""Loop length, batch limits, validation schedule, hooks and the fit/validate/test/predict entry points."""

import math
import time

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from runtime import Callback, MisconfigurationException, Trainer
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


def _recording_hook(name):
    def hook(self, *args, **kwargs):
        self.calls.append(name)

    return hook


HOOK_NAMES = [n for n in vars(Callback) if n.startswith("on_") or n in ("setup", "teardown")]
Recorder = type("Recorder", (Callback,), {n: _recording_hook(n) for n in HOOK_NAMES})


class CountingRegressor(TinyRegressor):
    def __init__(self):
        super().__init__()
        self.train_batches = []
        self.val_runs = []

    def training_step(self, batch, batch_idx):
        self.train_batches.append((self.current_epoch, batch_idx))
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_start(self):
        if not self.trainer.sanity_checking:
            self.val_runs.append((self.current_epoch, self.global_step))


def fit(tmp_path, module=None, train=None, val=None, **args):
    module = module or CountingRegressor()
    trainer = Trainer(**{**quiet_trainer_args(tmp_path), **args})
    trainer.fit(module, train if train is not None else loader(), val)
    return trainer, module


def test_max_epochs(tmp_path):
    trainer, module = fit(tmp_path, max_epochs=3)
    assert trainer.current_epoch == 3 and trainer.global_step == 24 and len(module.train_batches) == 24


def test_max_steps_stops_mid_epoch(tmp_path):
    trainer, module = fit(tmp_path, max_steps=11)
    assert trainer.global_step == 11 and module.train_batches[-1] == (1, 2)


def test_max_time_stops_training(tmp_path):
    class Slow(CountingRegressor):
        def training_step(self, batch, batch_idx):
            time.sleep(0.02)
            return super().training_step(batch, batch_idx)

    trainer, module = fit(tmp_path, Slow(), max_epochs=1000, max_time={"seconds": 0.3})
    assert 5 <= trainer.global_step < 40


def test_min_epochs_overrides_an_early_should_stop(tmp_path):
    class StopsAtOnce(CountingRegressor):
        def on_train_epoch_end(self):
            self.trainer.should_stop = True

    trainer, _ = fit(tmp_path, StopsAtOnce(), max_epochs=10, min_epochs=3)
    assert trainer.current_epoch == 3


@pytest.mark.parametrize(("limit", "batches"), [(3, 3), (0.5, 4), (1.0, 8)])
def test_limit_train_batches(tmp_path, limit, batches):
    trainer, module = fit(tmp_path, max_epochs=1, limit_train_batches=limit)
    assert trainer.num_training_batches == batches and len(module.train_batches) == batches


def test_limit_val_batches_and_sanity_steps(tmp_path):
    calls = []

    class Counts(CountingRegressor):
        def validation_step(self, batch, batch_idx):
            calls.append(self.trainer.sanity_checking)
            return super().validation_step(batch, batch_idx)

    fit(tmp_path, Counts(), val=loader(seed=1), max_epochs=2, limit_val_batches=3, num_sanity_val_steps=2)
    assert calls == [True, True] + [False] * 6


def test_val_check_interval_int_validates_within_the_epoch(tmp_path):
    _, module = fit(tmp_path, val=loader(seed=1), max_epochs=2, val_check_interval=3, num_sanity_val_steps=0)
    assert module.val_runs == [(0, 3), (0, 6), (1, 11), (1, 14)]


def test_val_check_interval_fraction(tmp_path):
    _, module = fit(tmp_path, val=loader(seed=1), max_epochs=1, val_check_interval=0.25, num_sanity_val_steps=0)
    assert module.val_runs == [(0, 2), (0, 4), (0, 6), (0, 8)]


def test_val_check_interval_across_epochs_with_check_val_every_n_epoch_none(tmp_path):
    _, module = fit(tmp_path, val=loader(seed=1), max_epochs=2, val_check_interval=5, check_val_every_n_epoch=None,
                    num_sanity_val_steps=0)
    assert module.val_runs == [(0, 5), (1, 10), (1, 15)]


def test_check_val_every_n_epoch(tmp_path):
    _, module = fit(tmp_path, val=loader(seed=1), max_epochs=4, check_val_every_n_epoch=2, num_sanity_val_steps=0)
    assert [epoch for epoch, _ in module.val_runs] == [1, 3]


def test_on_train_batch_start_returning_minus_one_ends_the_epoch(tmp_path):
    class Skips(CountingRegressor):
        def on_train_batch_start(self, batch, batch_idx):
            return -1 if batch_idx == 2 else None

    _, module = fit(tmp_path, Skips(), max_epochs=2)
    assert module.train_batches == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_fast_dev_run_runs_one_batch_of_each(tmp_path):
    trainer, module = fit(tmp_path, val=loader(seed=1), fast_dev_run=True, logger=True)
    assert module.train_batches == [(0, 0)] and module.val_runs == [(0, 1)]
    assert trainer.loggers == []


def test_overfit_batches_reuses_the_same_unshuffled_batches(tmp_path):
    firsts = []

    class Records(CountingRegressor):
        def training_step(self, batch, batch_idx):
            firsts.append(batch[0][0, 0].item())
            return super().training_step(batch, batch_idx)

    fit(tmp_path, Records(), train=loader(shuffle=True), max_epochs=2, overfit_batches=2)
    assert firsts[:2] == firsts[2:] and len(firsts) == 4


def test_a_loader_without_length_trains_to_exhaustion(tmp_path):
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(loader().dataset)

    trainer, module = fit(tmp_path, train=DataLoader(Stream(), batch_size=8), max_epochs=2)
    assert math.isinf(trainer.num_training_batches) and len(module.train_batches) == 16


def test_estimated_stepping_batches(tmp_path):
    trainer = Trainer(max_epochs=3, accumulate_grad_batches=3, **quiet_trainer_args(tmp_path))
    trainer.fit(TinyRegressor(), loader())
    assert trainer.estimated_stepping_batches == 3 * math.ceil(8 / 3)


def test_hooks_run_in_lightning_order(tmp_path):
    recorder = Recorder()
    recorder.calls = []
    trainer = Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, callbacks=[recorder],
                      **{k: v for k, v in quiet_trainer_args(tmp_path).items()})
    trainer.fit(TinyRegressor(), loader(), loader(seed=1))
    assert recorder.calls == [
        "setup", "on_fit_start", "on_sanity_check_start", "on_validation_start", "on_validation_epoch_start",
        "on_validation_batch_start", "on_validation_batch_end", "on_validation_epoch_end", "on_validation_end",
        "on_sanity_check_end", "on_train_start", "on_train_epoch_start", "on_train_batch_start",
        "on_before_zero_grad", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
        "on_train_batch_end", "on_validation_start", "on_validation_epoch_start", "on_validation_batch_start",
        "on_validation_batch_end", "on_validation_epoch_end", "on_validation_end", "on_train_epoch_end",
        "on_train_end", "on_fit_end", "teardown",
    ]


def test_validate_and_test_return_metrics_per_dataloader(tmp_path, capsys):
    trainer = Trainer(**quiet_trainer_args(tmp_path))
    module = TinyRegressor()
    [val] = trainer.validate(module, loader(seed=1))
    [test] = trainer.test(module, loader(seed=2))
    assert set(val) == {"val_loss"} and set(test) == {"test_loss"}
    assert "test_loss" in capsys.readouterr().out


class TwoLoaderTest(TinyRegressor):
    def test_step(self, batch, batch_idx, dataloader_idx=0):
        super().test_step(batch, batch_idx)


def test_several_test_loaders_get_indexed_keys(tmp_path):
    results = Trainer(**quiet_trainer_args(tmp_path)).test(TwoLoaderTest(), [loader(seed=1), loader(seed=2)],
                                                           verbose=False)
    assert [set(r) for r in results] == [{"test_loss/dataloader_idx_0"}, {"test_loss/dataloader_idx_1"}]


def test_several_loaders_need_a_dataloader_idx_argument(tmp_path):
    with pytest.raises(MisconfigurationException, match="dataloader_idx"):
        Trainer(**quiet_trainer_args(tmp_path)).test(TinyRegressor(), [loader(seed=1), loader(seed=2)])


def test_predict_returns_the_predictions(tmp_path):
    predictions = Trainer(**quiet_trainer_args(tmp_path)).predict(TinyRegressor(), DataLoader(torch.ones(10, 4),
                                                                                             batch_size=4))
    assert [p.shape for p in predictions] == [torch.Size([4, 1]), torch.Size([4, 1]), torch.Size([2, 1])]


def test_evaluation_runs_without_gradients_and_restores_train_mode(tmp_path):
    modes = []

    class Checks(TinyRegressor):
        def validation_step(self, batch, batch_idx):
            modes.append((self.training, torch.is_grad_enabled()))

        def on_train_epoch_end(self):
            modes.append((self.training, torch.is_grad_enabled()))

    fit(tmp_path, Checks(), val=loader(seed=1), max_epochs=1, limit_val_batches=1, num_sanity_val_steps=0)
    assert modes == [(False, False), (True, True)]


def test_module_properties_track_the_trainer(tmp_path):
    seen = []

    class Reads(TinyRegressor):
        def on_train_batch_end(self, outputs, batch, batch_idx):
            seen.append((self.current_epoch, self.global_step, self.device.type, outputs["loss"].requires_grad))

    fit(tmp_path, Reads(), max_epochs=2, limit_train_batches=2)
    assert seen == [(0, 1, "cpu", False), (0, 2, "cpu", False), (1, 3, "cpu", False), (1, 4, "cpu", False)]


def test_self_print_writes_once(tmp_path, capsys):
    class Prints(TinyRegressor):
        def on_train_end(self):
            self.print("finished", self.global_step)

    fit(tmp_path, Prints(), max_epochs=1, enable_progress_bar=True)
    assert "finished 8" in capsys.readouterr().out


def test_model_summary_is_printed_at_fit_start(tmp_path, capsys):
    fit(tmp_path, max_epochs=1, enable_model_summary=True)
    out = capsys.readouterr().out
    assert "| Name  | Type   | Params" in out and "5         Trainable params" in out


def test_progress_bar_shows_epoch_and_prog_bar_metrics(tmp_path, capsys):
    fit(tmp_path, max_epochs=1, enable_progress_bar=True)
    out = capsys.readouterr().out
    assert "Epoch 0" in out and "train_loss=" in out and "8/8" in out
