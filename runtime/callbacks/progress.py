"""The tqdm progress bar.

Reading a metric back from the GPU forces a host-device sync, so the bar refreshes at most
every `min_refresh_interval` seconds and only then reads `prog_bar` metrics.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

from runtime.callbacks.callback import Callback
from runtime.metrics import to_float


class ProgressBar(Callback):
    """Base for progress bars: the metrics they show, and whether this process shows any."""

    _enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self.is_enabled

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """In a multi-process run one bar is enough: rank 0's."""
        if not trainer.is_global_zero:
            self.disable()

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        version = getattr(trainer.logger, "version", None) if trainer.logger is not None else None
        if version is not None:
            metrics["v_num"] = version[-10:] if isinstance(version, str) else version
        for key, value in trainer.progress_bar_metrics.items():
            metrics[key] = to_float(value)
        return metrics


class TQDMProgressBar(ProgressBar):
    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False,
                 min_refresh_interval: float = 0.1) -> None:
        if refresh_rate < 0:
            raise ValueError(f"TQDMProgressBar(refresh_rate={refresh_rate}) must be >= 0; 0 disables the bar.")
        self.refresh_rate = refresh_rate
        self.process_position = process_position
        self.leave = leave
        self.min_refresh_interval = min_refresh_interval
        self._train_bar: tqdm | None = None
        self._eval_bar: tqdm | None = None
        self._pending = 0
        self._eval_pending = 0
        self._last_refresh = 0.0

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.refresh_rate > 0

    def _new_bar(self, desc: str, total: float | None, leave: bool, position_offset: int = 0) -> tqdm:
        return tqdm(
            desc=desc,
            total=None if total in (None, float("inf")) else int(total),
            position=2 * self.process_position + position_offset,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            disable=not self.is_enabled,
        )

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        total = trainer.num_training_batches
        if self._train_bar is None:
            self._train_bar = self._new_bar(f"Epoch {trainer.current_epoch}", total, leave=True)
        else:
            self._train_bar.reset(total=None if total == float("inf") else int(total))
            self._train_bar.set_description(f"Epoch {trainer.current_epoch}")
        self._pending = 0
        self._last_refresh = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._pending += 1
        if self._pending >= self.refresh_rate:
            now = time.perf_counter()
            if now - self._last_refresh >= self.min_refresh_interval:
                self._last_refresh = now
                self._flush_train(trainer, pl_module)

    def _flush_train(self, trainer: Any, pl_module: Any) -> None:
        bar = self._train_bar
        if bar is None:
            return
        if self._pending:
            bar.update(self._pending)
            self._pending = 0
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=True)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._flush_train(trainer, pl_module)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_eval_bar()
        if self._train_bar is not None and trainer.state_fn == "fit" and not trainer.sanity_checking:
            self._train_bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=True)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._train_bar is not None:
            self._train_bar.close()
            self._train_bar = None

    def _open_eval_bar(self, trainer: Any, desc: str, total: float) -> None:
        self._close_eval_bar()
        fitting = trainer.state_fn == "fit"
        self._eval_bar = self._new_bar(desc, total, leave=self.leave and not fitting, position_offset=int(fitting))
        self._eval_pending = 0

    def _advance_eval_bar(self) -> None:
        self._eval_pending += 1
        if self._eval_pending >= self.refresh_rate and self._eval_bar is not None:
            self._eval_bar.update(self._eval_pending)
            self._eval_pending = 0

    def _close_eval_bar(self) -> None:
        if self._eval_bar is not None:
            if self._eval_pending:
                self._eval_bar.update(self._eval_pending)
            self._eval_bar.close()
            self._eval_bar = None

    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self._open_eval_bar(trainer, "Sanity Checking", trainer.num_sanity_val_batches_total)

    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_eval_bar()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._open_eval_bar(trainer, "Validation", sum(trainer.num_val_batches))

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._advance_eval_bar()

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._open_eval_bar(trainer, "Testing", sum(trainer.num_test_batches))

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._advance_eval_bar()

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_eval_bar()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._open_eval_bar(trainer, "Predicting", sum(trainer.num_predict_batches))

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        self._advance_eval_bar()

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_eval_bar()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close_eval_bar()
        self.on_train_end(trainer, pl_module)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print above the bars without breaking them (used by `LightningModule.print`)."""
        tqdm.write(" ".join(str(a) for a in args), file=sys.stdout, end=kwargs.get("end", "\n"))
