"""Exact resume: an interrupted and resumed fit equals an uninterrupted one, bit for bit.

CPU, fp32, shuffled loader, dropout, Adam + StepLR. Every restart builds a fresh module and
Trainer after reseeding the global RNGs to something else, so only the checkpoint can make
the runs agree.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from runtime.callbacks import Callback, ModelCheckpoint
from scripts_resume.tiny_task import DropoutRegressor, fit, make_trainer, straight_run, weights

# A resume writes into the directory it resumes from, which ModelCheckpoint (like Lightning's) warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Checkpoint directory")


class Crash(Exception):
    """Stands in for a preemption."""


class CrashAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash


def scramble_global_rng() -> None:
    torch.manual_seed(987654)
    random.seed(987654)
    np.random.seed(987654)


def assert_same_weights(actual: torch.nn.Module, expected: torch.nn.Module) -> None:
    expected_weights = weights(expected)
    for name, tensor in weights(actual).items():
        assert torch.equal(tensor, expected_weights[name]), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return straight_run(tmp_path_factory.mktemp("straight"))


def resume(ckpt_dir, ckpt_path="last", every_n_train_steps=None, **trainer_args) -> DropoutRegressor:
    scramble_global_rng()
    module = DropoutRegressor()
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=every_n_train_steps)
    trainer = make_trainer(ckpt_dir.parent, callbacks=[checkpoint], **trainer_args)
    fit(module, trainer, ckpt_path=ckpt_path)
    assert trainer.current_epoch == 4 and trainer.global_step == 32
    return module


def test_four_straight_epochs_take_32_steps(straight):
    assert [step for step, _ in straight.losses] == list(range(32))


@pytest.mark.parametrize("written_by", ["ModelCheckpoint(save_last=True)", "trainer.save_checkpoint after fit"])
def test_two_epochs_then_resume_to_four_equals_four_straight_epochs(tmp_path, straight, written_by):
    torch.manual_seed(0)
    first = DropoutRegressor()
    ckpt_dir = tmp_path / "checkpoints"
    trainer = make_trainer(tmp_path, max_epochs=2, callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])
    fit(first, trainer)
    ckpt_path = "last"
    if written_by.startswith("trainer"):
        ckpt_path = tmp_path / "after_fit.ckpt"
        trainer.save_checkpoint(ckpt_path)

    second = resume(ckpt_dir, ckpt_path)

    assert first.losses + second.losses == straight.losses
    assert_same_weights(second, straight)


@pytest.mark.parametrize(("every_n_train_steps", "crash_step", "resumed_from_step"), [
    (5, 14, 10),  # epoch 1, after its 2nd batch
    (8, 11, 8),  # the last batch of epoch 0: its validation had not run yet
])
def test_resume_from_a_mid_epoch_checkpoint_equals_the_straight_run(tmp_path, straight, every_n_train_steps,
                                                                    crash_step, resumed_from_step):
    torch.manual_seed(0)
    first = DropoutRegressor()
    ckpt_dir = tmp_path / "checkpoints"
    callbacks = [CrashAtStep(crash_step), ModelCheckpoint(dirpath=ckpt_dir, save_last=True,
                                                          every_n_train_steps=every_n_train_steps)]
    with pytest.raises(Crash):
        fit(first, make_trainer(tmp_path, callbacks=callbacks))

    second = resume(ckpt_dir, every_n_train_steps=every_n_train_steps)

    assert second.losses[0][0] == resumed_from_step
    assert first.losses[:resumed_from_step] + second.losses == straight.losses
    assert_same_weights(second, straight)


def test_resume_from_a_checkpoint_saved_by_a_mid_epoch_validation_equals_the_straight_run(tmp_path):
    # Each validation run draws from the global RNG (the loader's iterator seed), so the reference validates alike.
    straight = straight_run(tmp_path / "straight", val_check_interval=0.5)
    torch.manual_seed(0)
    first = DropoutRegressor()
    ckpt_dir = tmp_path / "checkpoints"
    callbacks = [CrashAtStep(14), ModelCheckpoint(dirpath=ckpt_dir, save_last=True)]
    with pytest.raises(Crash):
        fit(first, make_trainer(tmp_path, callbacks=callbacks, val_check_interval=0.5))

    second = resume(ckpt_dir, val_check_interval=0.5)

    assert second.losses[0][0] == 12
    assert first.losses[:12] + second.losses == straight.losses
    assert_same_weights(second, straight)


def test_the_resumed_epoch_sees_the_remaining_batches_of_the_same_shuffled_order(tmp_path):
    class RecordsBatches(DropoutRegressor):
        def training_step(self, batch, batch_idx):
            self.seen = getattr(self, "seen", []) + [(self.current_epoch, batch_idx, batch[0][0, 0].item())]
            return super().training_step(batch, batch_idx)

    torch.manual_seed(0)
    straight_module = RecordsBatches()
    fit(straight_module, make_trainer(tmp_path / "straight", max_epochs=2))
    torch.manual_seed(0)
    first = RecordsBatches()
    ckpt_dir = tmp_path / "checkpoints"
    with pytest.raises(Crash):
        fit(first, make_trainer(tmp_path, max_epochs=2, callbacks=[
            CrashAtStep(13), ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=11)]))
    scramble_global_rng()
    second = RecordsBatches()
    fit(second, make_trainer(tmp_path, max_epochs=2, callbacks=[
        ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=11)]), ckpt_path="last")

    assert second.seen == straight_module.seen[11:]
