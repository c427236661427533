"""What `self.log` records, and how it becomes step values, epoch values and logger rows.

The per-step path only stores references: values stay on their device and nothing is read
back to the host until a logger, the progress bar or a callback asks for them. Epoch
reductions run once per epoch over the stored values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch

from runtime.exceptions import MisconfigurationException

# Hooks that log per step by default; every other hook logs per epoch (Lightning's table).
_STEP_HOOKS = frozenset(
    {
        "training_step",
        "on_train_batch_start",
        "on_train_batch_end",
        "on_before_backward",
        "on_after_backward",
        "on_before_optimizer_step",
        "on_before_zero_grad",
        "optimizer_step",
        "lr_scheduler_step",
    }
)
_REDUCE_NAMES = {"mean": "mean", "avg": "mean", "sum": "sum", "max": "max", "min": "min"}
_REDUCE_FUNCTIONS = {torch.mean: "mean", torch.sum: "sum", torch.max: "max", torch.min: "min"}
_COMPACT_EVERY = 4096


def logging_defaults(fx: str) -> tuple[bool, bool]:
    """(on_step, on_epoch) that Lightning uses when the caller gives neither."""
    return (True, False) if fx in _STEP_HOOKS else (False, True)


class LoggedMetric:
    """One key passed to `self.log`: its last step value and the values for the epoch reduction."""

    __slots__ = ("name", "fx", "on_step", "on_epoch", "prog_bar", "logger", "reduce", "values", "weights", "last")

    def __init__(self, name: str, fx: str, on_step: bool, on_epoch: bool, prog_bar: bool, logger: bool,
                 reduce: str | Callable) -> None:
        self.name = name
        self.fx = fx
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.prog_bar = prog_bar
        self.logger = logger
        self.reduce = reduce
        self.values: list[Any] = []
        self.weights: list[float] = []
        self.last: Any = None

    def add(self, value: Any, weight: float) -> None:
        self.values.append(value)
        self.weights.append(weight)
        if len(self.values) >= _COMPACT_EVERY:
            self._compact()

    def epoch_value(self) -> torch.Tensor:
        values = _stack(self.values)
        if self.reduce == "mean":
            weights = torch.tensor(self.weights, dtype=torch.float64, device=values.device)
            return (values.to(torch.float64) * weights).sum() / weights.sum()
        if self.reduce == "sum":
            return values.sum()
        if self.reduce == "max":
            return values.max()
        if self.reduce == "min":
            return values.min()
        return self.reduce(values)

    def _compact(self) -> None:
        """Fold stored values into one so a very long epoch keeps memory flat."""
        if self.reduce not in ("mean", "sum", "max", "min"):
            return
        total_weight = float(sum(self.weights))
        folded = self.epoch_value()
        self.values = [folded]
        self.weights = [total_weight if self.reduce == "mean" else 1.0]


class ResultCollection:
    """Metrics logged during one stage (train, validate, test) of the current run."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.metrics: dict[tuple[str, str, int | None], LoggedMetric] = {}
        self.batch: Any = None
        self._batch_size: int | None = None
        self.dataloader_idx: int | None = None

    def new_batch(self, batch: Any) -> None:
        self.batch = batch
        self._batch_size = None

    def log(self, fx: str, name: str, value: Any, prog_bar: bool, logger: bool, on_step: bool | None,
            on_epoch: bool | None, reduce_fx: str | Callable, batch_size: int | None) -> None:
        metric = self.metrics.get((fx, name, self.dataloader_idx))
        if metric is None:
            metric = self._register(fx, name, value, prog_bar, logger, on_step, on_epoch, reduce_fx)
        if isinstance(value, torch.Tensor):
            if value.requires_grad:
                value = value.detach()
        elif not isinstance(value, (int, float)):
            value = _as_scalar(name, value)
        if metric.on_step:
            metric.last = value
        if metric.on_epoch:
            weight = 1.0
            if metric.reduce == "mean":
                weight = float(batch_size) if batch_size is not None else self._current_batch_size()
            metric.add(value, weight)

    def _register(self, fx: str, name: str, value: Any, prog_bar: bool, logger: bool, on_step: bool | None,
                  on_epoch: bool | None, reduce_fx: str | Callable) -> LoggedMetric:
        key = name if self.dataloader_idx is None else f"{name}/dataloader_idx_{self.dataloader_idx}"
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise MisconfigurationException(
                f"self.log({key!r}, ...) got a tensor of shape {tuple(value.shape)}; log a scalar, "
                f"e.g. value.mean(), or use self.log_dict for several values."
            )
        default_step, default_epoch = logging_defaults(fx)
        on_step = default_step if on_step is None else on_step
        on_epoch = default_epoch if on_epoch is None else on_epoch
        if self.stage != "train" and on_step and fx not in _STEP_HOOKS and not fx.endswith("_step"):
            on_step = False
        metric = LoggedMetric(key, fx, on_step, on_epoch, prog_bar, logger, _reduce_name(reduce_fx))
        self.metrics[(fx, name, self.dataloader_idx)] = metric
        return metric

    def _current_batch_size(self) -> float:
        if self._batch_size is None:
            self._batch_size = extract_batch_size(self.batch)
        return float(self._batch_size)

    def step_values(self) -> dict[str, tuple[LoggedMetric, Any]]:
        """Latest per-step values, keyed as Lightning names them (`_step` suffix when also per epoch)."""
        out = {}
        for metric in self.metrics.values():
            if metric.on_step and metric.last is not None:
                out[metric.name + "_step" if metric.on_epoch else metric.name] = (metric, metric.last)
        return out

    def epoch_values(self) -> dict[str, tuple[LoggedMetric, torch.Tensor]]:
        """Epoch values so far (`_epoch` suffix when also per step), leaving the accumulators as they are."""
        out = {}
        for metric in self.metrics.values():
            if metric.on_epoch and metric.values:
                key = metric.name + "_epoch" if metric.on_step else metric.name
                out[key] = (metric, metric.epoch_value())
        return out

    def reduce_epoch(self) -> dict[str, tuple[LoggedMetric, torch.Tensor]]:
        """Epoch values, then clear the accumulators for the next epoch."""
        out = self.epoch_values()
        for metric, _ in out.values():
            metric.values = []
            metric.weights = []
        return out

    def reset(self) -> None:
        self.metrics.clear()
        self.batch = None
        self._batch_size = None


def extract_batch_size(batch: Any) -> int:
    """The size of the first dimension of the first tensor found, as Lightning infers it."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim > 0 else 1
    if isinstance(batch, str):
        return len(batch)
    if isinstance(batch, Mapping):
        for value in batch.values():
            found = _try_batch_size(value)
            if found is not None:
                return found
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            found = _try_batch_size(value)
            if found is not None:
                return found
    return 1


def _try_batch_size(value: Any) -> int | None:
    if isinstance(value, (torch.Tensor, Mapping, list, tuple)):
        return extract_batch_size(value)
    return None


def to_float(value: Any) -> float:
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def _stack(values: list[Any]) -> torch.Tensor:
    tensors = [v if isinstance(v, torch.Tensor) else torch.tensor(float(v)) for v in values]
    device = tensors[0].device
    return torch.stack([t.reshape(()).to(device) for t in tensors])


def _reduce_name(reduce_fx: str | Callable) -> str | Callable:
    if isinstance(reduce_fx, str):
        try:
            return _REDUCE_NAMES[reduce_fx.lower()]
        except KeyError:
            raise MisconfigurationException(
                f"reduce_fx={reduce_fx!r} is not supported; use 'mean', 'sum', 'max', 'min' or a callable."
            ) from None
    return _REDUCE_FUNCTIONS.get(reduce_fx, reduce_fx)


def _as_scalar(name: str, value: Any) -> Any:
    if hasattr(value, "item"):
        return float(value.item())
    raise MisconfigurationException(
        f"self.log({name!r}, value) needs a number or a scalar tensor, got {type(value).__name__}."
    )
