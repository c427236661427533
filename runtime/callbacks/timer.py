"""`Timer`: track time per stage and stop fit after a time budget.

`Trainer(max_time=...)` adds one of these, so the budget has one mechanism. Its elapsed
training time is saved in checkpoints: a resumed run continues the same budget instead of
starting a fresh one.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from runtime.callbacks.callback import Callback
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_info

STAGES = ("train", "sanity_check", "validate", "test", "predict")
_INTERVALS = ("step", "epoch")


class Timer(Callback):
    def __init__(self, duration: str | timedelta | dict[str, int] | None = None, interval: str = "step",
                 verbose: bool = True) -> None:
        if interval not in _INTERVALS:
            raise MisconfigurationException(
                f"Unsupported parameter value `Timer(interval={interval!r})`. Possible values are: step, epoch."
            )
        seconds = parse_duration(duration)
        self._duration = seconds
        self._interval = interval
        self._verbose = verbose
        self._start_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._end_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._offset = 0.0

    def start_time(self, stage: str = "train") -> float | None:
        return self._start_time[_stage(stage)]

    def end_time(self, stage: str = "train") -> float | None:
        return self._end_time[_stage(stage)]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in `stage`; for "train" this includes the time before a resume."""
        stage = _stage(stage)
        start, end = self._start_time[stage], self._end_time[stage]
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        if end is None:
            return time.monotonic() - start + offset
        return end - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("train")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("train")

    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("sanity_check")

    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("sanity_check")

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._start("validate")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._end("validate")

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("test")

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("test")

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("predict")

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("predict")

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """A resumed run may already have used its whole budget."""
        if self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._offset = state_dict.get("time_elapsed", {}).get("train", 0.0)

    def _start(self, stage: str) -> None:
        self._start_time[stage] = time.monotonic()
        self._end_time[stage] = None

    def _end(self, stage: str) -> None:
        self._end_time[stage] = time.monotonic()

    def _check_time_remaining(self, trainer: Any) -> None:
        # Rank 0's clock decides for every rank, so they stop after the same batch.
        should_stop = trainer.strategy.broadcast(self.time_elapsed() >= self._duration)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop and self._verbose:
            elapsed = timedelta(seconds=int(self.time_elapsed("train")))
            rank_zero_info(f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop.")


def parse_duration(duration: str | timedelta | dict[str, int] | None) -> float | None:
    """'DD:HH:MM:SS', a timedelta or a dict of timedelta fields, as seconds."""
    if duration is None:
        return None
    if isinstance(duration, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
        if not match:
            raise MisconfigurationException(
                f"`Timer(duration={duration!r})` is not a valid duration. Expected a string in the format "
                "DD:HH:MM:SS, e.g. '00:12:00:00' for 12 hours."
            )
        days, hours, minutes, seconds = (int(part) for part in match.groups())
        duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    elif isinstance(duration, dict):
        duration = timedelta(**duration)
    if not isinstance(duration, timedelta):
        raise MisconfigurationException(
            f"`Timer(duration={duration!r})` is not understood; use 'DD:HH:MM:SS', a datetime.timedelta or a dict "
            "of its fields."
        )
    return duration.total_seconds()


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise MisconfigurationException(f"Timer: unknown stage {stage!r}; use one of {', '.join(STAGES)}.")
    return stage
