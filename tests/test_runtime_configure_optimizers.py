"""Every return form of configure_optimizers that Lightning accepts, and the schedulers' stepping."""

import pytest
import torch

from runtime import MisconfigurationException, Trainer
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


class Configured(TinyRegressor):
    def __init__(self, build):
        super().__init__()
        self.build = build

    def configure_optimizers(self):
        return self.build(self)


def sgd(module):
    return torch.optim.SGD(module.parameters(), lr=0.1)


def fit(tmp_path, build, epochs=2, **args):
    module = Configured(build)
    trainer = Trainer(max_epochs=epochs, **quiet_trainer_args(tmp_path), **args)
    trainer.fit(module, loader(), loader(seed=1))
    return trainer


def test_a_single_optimizer(tmp_path):
    trainer = fit(tmp_path, sgd)
    assert len(trainer.optimizers) == 1 and trainer.lr_scheduler_configs == []


def test_a_list_with_one_optimizer(tmp_path):
    assert len(fit(tmp_path, lambda m: [sgd(m)]).optimizers) == 1


def test_optimizers_and_schedulers_as_two_lists(tmp_path):
    def build(m):
        opt = sgd(m)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]

    trainer = fit(tmp_path, build, epochs=3)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_a_dict_with_a_bare_scheduler_steps_per_epoch(tmp_path):
    def build(m):
        opt = sgd(m)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.1)}

    trainer = fit(tmp_path, build, epochs=2)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.1**2)


def test_a_scheduler_config_with_step_interval_and_frequency(tmp_path):
    def build(m):
        opt = sgd(m)
        sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 4}}

    trainer = fit(tmp_path, build, epochs=1)  # 8 batches -> 2 scheduler steps
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_reduce_lr_on_plateau_reads_its_monitor(tmp_path):
    def build(m):
        opt = sgd(m)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}

    trainer = fit(tmp_path, build, epochs=3)  # val_loss falls, so in "max" mode every epoch is a plateau
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_reduce_lr_on_plateau_with_a_key_never_logged_lists_the_logged_keys(tmp_path):
    def build(m):
        opt = sgd(m)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_acc"}}

    with pytest.raises(MisconfigurationException, match=r"'val_acc'.*never logged.*val_loss"):
        fit(tmp_path, build)


def test_reduce_lr_on_plateau_without_monitor_says_how_to_add_one(tmp_path):
    def build(m):
        opt = sgd(m)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(opt)}

    with pytest.raises(MisconfigurationException, match="monitor"):
        fit(tmp_path, build)


def test_an_unsupported_return_value_names_the_supported_forms(tmp_path):
    with pytest.raises(MisconfigurationException, match=r"not a supported form.*lr_scheduler"):
        fit(tmp_path, lambda m: "adam")


def test_none_explains_manual_optimization(tmp_path):
    with pytest.raises(MisconfigurationException, match="automatic_optimization = False"):
        fit(tmp_path, lambda m: None)


def test_two_optimizers_need_manual_optimization(tmp_path):
    with pytest.raises(MisconfigurationException, match="manual optimization"):
        fit(tmp_path, lambda m: [sgd(m), sgd(m)])


def test_self_lr_schedulers_returns_the_scheduler(tmp_path):
    seen = []

    class Peek(Configured):
        def on_train_start(self):
            seen.append(self.lr_schedulers())

    def build(m):
        opt = sgd(m)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

    module = Peek(build)
    Trainer(max_epochs=1, **quiet_trainer_args(tmp_path)).fit(module, loader())
    assert isinstance(seen[0], torch.optim.lr_scheduler.StepLR)


def test_lbfgs_gets_the_closure_it_reevaluates(tmp_path):
    calls = []

    class Counted(Configured):
        def training_step(self, batch, batch_idx):
            calls.append(batch_idx)
            return super().training_step(batch, batch_idx)

    module = Counted(lambda m: torch.optim.LBFGS(m.parameters(), lr=0.1, max_iter=3))
    Trainer(max_epochs=1, limit_train_batches=2, **quiet_trainer_args(tmp_path)).fit(module, loader())
    assert len(calls) > 2  # LBFGS evaluates the closure several times per step
