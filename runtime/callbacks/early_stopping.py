"""`EarlyStopping`: ask the trainer to stop when a monitored metric stops improving.

It only sets `trainer.should_stop`; the fit loop decides when that takes effect, so
`min_epochs` / `min_steps` still hold.
"""

from __future__ import annotations

from typing import Any

import torch

from runtime.callbacks.callback import Callback
from runtime.callbacks.monitor_keys import missing_monitor_message
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_info, rank_zero_warn


class EarlyStopping(Callback):
    mode_dict = {"min": torch.lt, "max": torch.gt}
    order_dict = {"min": "<", "max": ">"}

    def __init__(
        self,
        monitor: str,
        min_delta: float = 0.0,
        patience: int = 3,
        verbose: bool = False,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
        log_rank_zero_only: bool = False,
    ) -> None:
        if mode not in self.mode_dict:
            raise MisconfigurationException(f"EarlyStopping(mode={mode!r}): `mode` can be 'min' or 'max'.")
        if patience < 0:
            raise MisconfigurationException(f"EarlyStopping(patience={patience}) must be >= 0.")
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.strict = strict
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.log_rank_zero_only = log_rank_zero_only
        self._check_on_train_epoch_end = check_on_train_epoch_end
        # Stored signed, so "improved" is one comparison: current - min_delta beats best.
        self.min_delta = min_delta if self.monitor_op is torch.gt else -min_delta
        self.wait_count = 0
        self.stopped_epoch = 0
        self.best_score = torch.tensor(torch.inf if self.monitor_op is torch.lt else -torch.inf)

    @property
    def monitor_op(self) -> Any:
        return self.mode_dict[self.mode]

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._check_on_train_epoch_end is None:
            self._check_on_train_epoch_end = trainer.val_check_interval == 1.0 and trainer.check_val_every_n_epoch == 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": self.best_score,
            "patience": self.patience,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait_count = state_dict["wait_count"]
        self.stopped_epoch = state_dict["stopped_epoch"]
        self.best_score = state_dict["best_score"]
        self.patience = state_dict["patience"]

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._check_on_train_epoch_end and not self._should_skip_check(trainer):
            self._run_early_stopping_check(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._check_on_train_epoch_end and not self._should_skip_check(trainer):
            self._run_early_stopping_check(trainer)

    def _should_skip_check(self, trainer: Any) -> bool:
        return trainer.state_fn != "fit" or trainer.sanity_checking

    def _run_early_stopping_check(self, trainer: Any) -> None:
        metrics = trainer.callback_metrics
        if trainer.fast_dev_run or not self._monitor_is_logged(trainer, metrics):
            return
        current = metrics[self.monitor]
        current = (current.detach() if isinstance(current, torch.Tensor) else torch.tensor(float(current))).squeeze()
        should_stop, reason = self._evaluate_stopping_criteria(current)
        # Any rank that wants to stop stops them all: ranks that disagreed would run different loops.
        should_stop = trainer.strategy.reduce_boolean_decision(should_stop, all=False)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop:
            self.stopped_epoch = trainer.current_epoch
        if reason and self.verbose:
            rank_zero_info(reason)

    def _monitor_is_logged(self, trainer: Any, metrics: dict[str, Any]) -> bool:
        if metrics.get(self.monitor) is not None:
            return True
        message = missing_monitor_message("EarlyStopping", self.monitor, trainer)
        if self.strict:
            raise RuntimeError(message + " Or pass strict=False to skip epochs where it is missing.")
        if self.verbose:
            rank_zero_warn(message, category=RuntimeWarning)
        return False

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        if self.check_finite and not torch.isfinite(current):
            return True, (f"Monitored metric {self.monitor} = {current} is not finite. Previous best value was "
                          f"{float(self.best_score):.3f}. Signaling Trainer to stop.")
        order = self.order_dict[self.mode]
        if self.stopping_threshold is not None and self.monitor_op(current, self.stopping_threshold):
            return True, (f"Stopping threshold reached: {self.monitor} = {current} {order} "
                          f"{self.stopping_threshold}. Signaling Trainer to stop.")
        if self.divergence_threshold is not None and self.monitor_op(-current, -self.divergence_threshold):
            return True, (f"Divergence threshold reached: {self.monitor} = {current} {order} "
                          f"{self.divergence_threshold}. Signaling Trainer to stop.")
        if self.monitor_op(current - self.min_delta, self.best_score.to(current.device)):
            reason = self._improvement_message(current)
            self.best_score = current
            self.wait_count = 0
            return False, reason
        self.wait_count += 1
        if self.wait_count >= self.patience:
            return True, (f"Monitored metric {self.monitor} did not improve in the last {self.wait_count} records. "
                          f"Best score: {float(self.best_score):.3f}. Signaling Trainer to stop.")
        return False, None

    def _improvement_message(self, current: torch.Tensor) -> str:
        if torch.isfinite(self.best_score):
            return (f"Metric {self.monitor} improved by {abs(float(self.best_score) - float(current)):.3f} >= "
                    f"min_delta = {abs(self.min_delta)}. New best score: {float(current):.3f}")
        return f"Metric {self.monitor} improved. New best score: {float(current):.3f}"
