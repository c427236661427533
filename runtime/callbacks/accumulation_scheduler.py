"""`GradientAccumulationScheduler`: change `accumulate_grad_batches` at given epochs.

The fit loop reads `trainer.accumulate_grad_batches` at every batch, so setting it when an
epoch starts is all a schedule needs.
"""

from __future__ import annotations

import warnings
from typing import Any

from runtime.callbacks.callback import Callback, overrides
from runtime.exceptions import MisconfigurationException


class GradientAccumulationScheduler(Callback):
    def __init__(self, scheduling: dict[int, int]) -> None:
        if not scheduling:
            raise TypeError("GradientAccumulationScheduler(scheduling={}) is empty; pass {epoch: factor}, e.g. {0: 1, "
                            "4: 2}.")
        if any(not isinstance(epoch, int) or epoch < 0 for epoch in scheduling):
            raise MisconfigurationException(
                f"Epoch should be an int greater than or equal to 0. Got {list(scheduling.keys())}."
            )
        if any(not isinstance(factor, int) or factor < 1 for factor in scheduling.values()):
            raise MisconfigurationException(
                f"Accumulation factor should be an int greater than 0. Got {list(scheduling.values())}."
            )
        scheduling = dict(scheduling)
        scheduling.setdefault(0, 1)
        self.scheduling = scheduling
        self.epochs = sorted(scheduling)
        self._has_set_factor = False

    def going_to_accumulate_grad_batches(self) -> bool:
        return any(factor > 1 for factor in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """The factor of the latest scheduled epoch at or before `epoch`."""
        return self.scheduling[max(start for start in self.epochs if start <= epoch)]

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        from runtime.module import LightningModule

        if not pl_module.automatic_optimization:
            raise RuntimeError(
                "Automatic gradient accumulation and the `GradientAccumulationScheduler` is not supported for manual "
                "optimization. Please remove the callback or switch to automatic optimization."
            )
        overridden = any(overrides(pl_module, LightningModule, hook)
                         for hook in ("optimizer_step", "optimizer_zero_grad"))
        if overridden and self.going_to_accumulate_grad_batches():
            warnings.warn(
                "When using `Trainer(accumulate_grad_batches != 1)` and overriding "
                "`LightningModule.optimizer_{step,zero_grad}`, the hooks will not be called on every batch (rather, "
                "they are called on every optimization step).",
                stacklevel=2,
            )
        if trainer.accumulate_grad_batches != 1 and not self._has_set_factor:
            raise ValueError(
                "You have set `accumulate_grad_batches` and are using the `GradientAccumulationScheduler` callback. "
                "Either remove `accumulate_grad_batches` from the Trainer or remove the callback."
            )

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)
        self._has_set_factor = True
