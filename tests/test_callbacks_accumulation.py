"""GradientAccumulationScheduler: accumulate_grad_batches per epoch."""

from __future__ import annotations

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import GradientAccumulationScheduler
from runtime.exceptions import MisconfigurationException
from runtime_models import TinyRegressor, loader


def fit(tmp_path, max_epochs=3, callbacks=(), module=None, **args):
    torch.manual_seed(0)
    module = module or TinyRegressor()
    trainer = Trainer(max_epochs=max_epochs, callbacks=list(callbacks), default_root_dir=tmp_path, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, **args)
    trainer.fit(module, loader())
    return trainer, module


def test_the_factor_changes_at_the_scheduled_epochs(tmp_path):
    scheduler = GradientAccumulationScheduler({1: 2, 2: 4})
    trainer, _ = fit(tmp_path, callbacks=[scheduler])
    assert trainer.global_step == 8 + 4 + 2
    assert [scheduler.get_accumulate_grad_batches(epoch) for epoch in range(4)] == [1, 2, 4, 4]


def test_a_constant_schedule_trains_exactly_like_accumulate_grad_batches(tmp_path):
    _, scheduled = fit(tmp_path / "a", callbacks=[GradientAccumulationScheduler({0: 4})])
    _, fixed = fit(tmp_path / "b", accumulate_grad_batches=4)
    assert torch.equal(scheduled.layer.weight, fixed.layer.weight)


def test_it_refuses_to_combine_with_accumulate_grad_batches(tmp_path):
    with pytest.raises(ValueError, match="remove the callback"):
        fit(tmp_path, callbacks=[GradientAccumulationScheduler({0: 2})], accumulate_grad_batches=2)


def test_it_refuses_manual_optimization(tmp_path):
    class Manual(TinyRegressor):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            return None

    with pytest.raises(RuntimeError, match="manual optimization"):
        fit(tmp_path, callbacks=[GradientAccumulationScheduler({0: 2})], module=Manual())


@pytest.mark.parametrize(("scheduling", "error", "match"), [
    ({}, TypeError, "empty"),
    ({-1: 2}, MisconfigurationException, "Epoch should be an int"),
    ({0: 0}, MisconfigurationException, "Accumulation factor"),
])
def test_invalid_schedules_are_refused(scheduling, error, match):
    with pytest.raises(error, match=match):
        GradientAccumulationScheduler(scheduling)
