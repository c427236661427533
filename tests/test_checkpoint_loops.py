"""The `loops` key: Lightning 2.x's layout, with the counters Lightning would hold at the save.

Lightning's `fit(ckpt_path=...)` reads the epoch, the position in the epoch and the step
count from these counters, so they must say what Lightning's own loops would have said at
the same moment: inside `on_train_batch_end` a batch is "processed" but not yet
"completed"; inside `on_train_epoch_end` the epoch is "processed" but not "completed".
"""

from __future__ import annotations

import pytest
import torch

from runtime.callbacks import Callback
from runtime.checkpoint_loops import fit_state_from_lightning
from scripts_resume.tiny_task import DropoutRegressor, fit, make_trainer


def counts(*values, names=("ready", "started", "processed", "completed")):
    return dict(zip(names, values))


def ready_completed(value):
    return counts(value, value, names=("ready", "completed"))


def zero_grad(value):
    return counts(value, value, value, names=("ready", "started", "completed"))


class SaveAt(Callback):
    """Saves from inside the hooks where ModelCheckpoint saves."""

    def __init__(self, directory):
        self.directory = directory

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 10:
            trainer.save_checkpoint(self.directory / "mid_epoch.ckpt")

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            trainer.save_checkpoint(self.directory / "epoch_end.ckpt")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("loops")
    torch.manual_seed(0)
    trainer = make_trainer(directory, max_epochs=2, callbacks=[SaveAt(directory)], enable_checkpointing=False)
    fit(DropoutRegressor(), trainer)
    trainer.save_checkpoint(directory / "after_fit.ckpt")
    return {name: torch.load(directory / f"{name}.ckpt", weights_only=True)
            for name in ("mid_epoch", "epoch_end", "after_fit")}


def test_the_layout_is_lightnings(saved):
    loops = saved["epoch_end"]["loops"]
    assert loops.keys() == {"fit_loop", "validate_loop", "test_loop", "predict_loop"}
    assert loops["fit_loop"].keys() == {
        "state_dict", "epoch_loop.state_dict", "epoch_loop.batch_progress", "epoch_loop.scheduler_progress",
        "epoch_loop.manual_optimization.state_dict", "epoch_loop.manual_optimization.optim_step_progress",
        "epoch_loop.automatic_optimization.state_dict", "epoch_loop.automatic_optimization.optim_progress",
        "epoch_loop.val_loop.state_dict", "epoch_loop.val_loop.batch_progress", "epoch_progress",
    }
    for name in ("validate_loop", "test_loop"):
        assert loops[name] == {"state_dict": {}, "batch_progress": {"total": counts(0, 0, 0, 0),
                                                                    "current": counts(0, 0, 0, 0),
                                                                    "is_last_batch": False}}
    assert loops["predict_loop"]["batch_progress"].keys() == {"total", "current"}


def test_a_save_in_on_train_batch_end_has_the_batch_processed_but_not_completed(saved):
    fit_loop = saved["mid_epoch"]["loops"]["fit_loop"]  # step 10: epoch 1, its second batch
    assert fit_loop["epoch_progress"] == {"total": counts(2, 2, 1, 1), "current": counts(2, 2, 1, 1)}
    assert fit_loop["epoch_loop.batch_progress"] == {
        "total": counts(10, 10, 10, 9), "current": counts(2, 2, 2, 1), "is_last_batch": False}
    assert fit_loop["epoch_loop.state_dict"] == {"_batches_that_stepped": 9}
    assert fit_loop["epoch_loop.automatic_optimization.optim_progress"] == {"optimizer": {
        "step": {"total": ready_completed(10), "current": ready_completed(2)},
        "zero_grad": {"total": zero_grad(10), "current": zero_grad(2)}}}
    assert fit_loop["epoch_loop.manual_optimization.optim_step_progress"] == {
        "total": ready_completed(0), "current": ready_completed(0)}
    assert fit_loop["epoch_loop.scheduler_progress"] == {"total": ready_completed(1), "current": ready_completed(0)}
    assert fit_loop["epoch_loop.val_loop.batch_progress"] == {
        "total": counts(0, 0, 0, 0), "current": counts(2, 2, 2, 2), "is_last_batch": True}


def test_a_save_in_on_train_epoch_end_has_the_epoch_processed_but_not_completed(saved):
    fit_loop = saved["epoch_end"]["loops"]["fit_loop"]
    assert saved["epoch_end"]["epoch"] == 1 and saved["epoch_end"]["global_step"] == 16
    assert fit_loop["epoch_progress"] == {"total": counts(2, 2, 2, 1), "current": counts(2, 2, 2, 1)}
    assert fit_loop["epoch_loop.batch_progress"] == {
        "total": counts(16, 16, 16, 16), "current": counts(8, 8, 8, 8), "is_last_batch": True}
    assert fit_loop["epoch_loop.state_dict"] == {"_batches_that_stepped": 16}
    assert fit_loop["epoch_loop.scheduler_progress"] == {"total": ready_completed(2), "current": ready_completed(1)}
    assert fit_loop["epoch_loop.val_loop.batch_progress"]["total"] == counts(2, 2, 2, 2)


def test_a_save_after_fit_has_every_epoch_completed(saved):
    fit_loop = saved["after_fit"]["loops"]["fit_loop"]
    assert saved["after_fit"]["epoch"] == 2
    assert fit_loop["epoch_progress"] == {"total": counts(2, 2, 2, 2), "current": counts(2, 2, 2, 2)}


@pytest.mark.parametrize(("name", "epoch", "batch_idx", "global_step", "batches_that_stepped"), [
    ("mid_epoch", 1, 2, 10, 10),
    ("epoch_end", 2, 0, 16, 16),
    ("after_fit", 2, 0, 16, 16),
])
def test_reading_the_lightning_counters_back_gives_the_same_resume_position(saved, name, epoch, batch_idx,
                                                                             global_step, batches_that_stepped):
    checkpoint = dict(saved[name])
    runtime_state = checkpoint.pop("runtime_fit_loop")
    from_lightning = fit_state_from_lightning(checkpoint)
    pending_step = int(bool(runtime_state["pending_batch"] and runtime_state["pending_batch"]["stepped"]))
    assert (runtime_state["epoch"], runtime_state["batch_idx"], runtime_state["global_step"],
            runtime_state["batches_that_stepped"] + pending_step) == (epoch, batch_idx, global_step,
                                                                      batches_that_stepped)
    assert (from_lightning["epoch"], from_lightning["batch_idx"], from_lightning["global_step"],
            from_lightning["batches_that_stepped"]) == (epoch, batch_idx, global_step, batches_that_stepped)
