"""LearningRateMonitor: Lightning's keys, intervals and momentum."""

from __future__ import annotations

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import LearningRateMonitor
from runtime.exceptions import MisconfigurationException
from runtime.loggers import Logger
from runtime_models import TinyRegressor, loader


class MemoryLogger(Logger):
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        """Not needed here."""


class WithScheduler(TinyRegressor):
    def __init__(self, interval="epoch", optimizer="sgd"):
        super().__init__()
        self.interval = interval
        self.optimizer = optimizer

    def configure_optimizers(self):
        if self.optimizer == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=0.1, betas=(0.8, 0.99))
        else:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.interval}}


def fit(tmp_path, monitor, module, max_epochs=2, **trainer_args):
    logger = MemoryLogger()
    trainer = Trainer(max_epochs=max_epochs, callbacks=[monitor], logger=logger, default_root_dir=tmp_path,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      **trainer_args)
    trainer.fit(module, loader())
    return [(step, row) for step, row in logger.rows if any(key.startswith("lr-") for key in row)]


def test_an_epoch_scheduler_logs_its_learning_rate_at_each_epoch_start(tmp_path):
    rows = fit(tmp_path, LearningRateMonitor(), WithScheduler())
    assert rows == [(0, {"lr-SGD": 0.1}), (8, {"lr-SGD": 0.05})]


def test_a_step_scheduler_logs_every_log_every_n_steps(tmp_path):
    rows = fit(tmp_path, LearningRateMonitor(), WithScheduler(interval="step"), max_epochs=1, log_every_n_steps=4)
    assert [(step, row["lr-SGD"]) for step, row in rows] == [(3, 0.1 * 0.5 ** 3), (7, 0.1 * 0.5 ** 7)]


def test_logging_interval_step_logs_an_epoch_scheduler_per_step(tmp_path):
    rows = fit(tmp_path, LearningRateMonitor(logging_interval="step"), WithScheduler(), max_epochs=1,
               log_every_n_steps=4)
    assert [step for step, _ in rows] == [3, 7]


def test_an_optimizer_without_scheduler_is_logged_too(tmp_path):
    rows = fit(tmp_path, LearningRateMonitor(logging_interval="epoch"), TinyRegressor(lr=0.3), max_epochs=1)
    assert rows == [(0, {"lr-SGD": 0.3})]


@pytest.mark.parametrize(("optimizer", "key", "value"), [("sgd", "lr-SGD-momentum", 0.9),
                                                         ("adam", "lr-Adam-momentum", 0.8)])
def test_log_momentum_logs_momentum_or_the_first_beta(tmp_path, optimizer, key, value):
    rows = fit(tmp_path, LearningRateMonitor(log_momentum=True), WithScheduler(optimizer=optimizer), max_epochs=1)
    assert rows[0][1][key] == value


def test_parameter_groups_get_their_name_or_a_pg_suffix(tmp_path):
    class TwoGroups(TinyRegressor):
        def configure_optimizers(self):
            return torch.optim.SGD([{"params": [self.layer.weight], "name": "weights"},
                                    {"params": [self.layer.bias], "lr": 0.01}], lr=0.1)

    rows = fit(tmp_path, LearningRateMonitor(logging_interval="epoch"), TwoGroups(), max_epochs=1)
    assert rows == [(0, {"lr-SGD/weights": 0.1, "lr-SGD/pg2": 0.01})]


def test_without_a_logger_it_refuses_to_run(tmp_path):
    trainer = Trainer(max_epochs=1, callbacks=[LearningRateMonitor()], logger=False, default_root_dir=tmp_path,
                      enable_progress_bar=False, enable_checkpointing=False)
    with pytest.raises(MisconfigurationException, match="no logger"):
        trainer.fit(TinyRegressor(), loader())


def test_an_unknown_logging_interval_is_refused():
    with pytest.raises(MisconfigurationException, match="'step', 'epoch' or None"):
        LearningRateMonitor(logging_interval="batch")
