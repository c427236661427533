"""Reading `configure_optimizers` in all its return forms, and the optimizer wrapper used in manual optimization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.optim import Optimizer

from runtime.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from runtime.trainer import Trainer

_PLATEAU = torch.optim.lr_scheduler.ReduceLROnPlateau
_SCHEDULER_KEYS = {"scheduler", "interval", "frequency", "monitor", "strict", "name", "reduce_on_plateau"}


@dataclass
class LRSchedulerConfig:
    scheduler: Any
    name: str | None = None
    interval: str = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: str | None = None
    strict: bool = True
    opt_idx: int = 0


def parse_configure_optimizers(returned: Any) -> tuple[list[Optimizer], list[LRSchedulerConfig], list[int]]:
    """Normalise every form Lightning accepts into (optimizers, scheduler configs, frequencies)."""
    if returned is None:
        raise MisconfigurationException(
            "configure_optimizers returned None. Return an optimizer, e.g. "
            "`return torch.optim.SGD(self.parameters(), lr=0.1)`, or set `automatic_optimization = False` "
            "and step yourself."
        )
    if isinstance(returned, Optimizer):
        return [returned], [], []
    if isinstance(returned, Mapping):
        return _from_dicts([returned])
    if isinstance(returned, Sequence) and not isinstance(returned, str):
        items = list(returned)
        if len(items) == 2 and all(isinstance(i, (list, tuple)) for i in items):
            optimizers = _expect_optimizers(items[0])
            return optimizers, [_scheduler_config(s, optimizers) for s in items[1]], []
        if items and all(isinstance(i, Mapping) for i in items):
            return _from_dicts(items)
        if items and all(isinstance(i, Optimizer) for i in items):
            return items, [], []
    raise MisconfigurationException(
        f"configure_optimizers returned {type(returned).__name__}, which is not a supported form. Return one of: "
        "an optimizer; a list of optimizers; ([optimizers], [schedulers]); "
        '{"optimizer": opt, "lr_scheduler": scheduler_or_config}; or a list of such dicts.'
    )


def _from_dicts(dicts: list[Mapping[str, Any]]) -> tuple[list[Optimizer], list[LRSchedulerConfig], list[int]]:
    optimizers, configs, frequencies = [], [], []
    for entry in dicts:
        unknown = set(entry) - {"optimizer", "lr_scheduler", "frequency", "monitor"}
        if "optimizer" not in entry or unknown:
            raise MisconfigurationException(
                f"configure_optimizers returned a dict with keys {sorted(entry)}; it needs 'optimizer' and may have "
                f"'lr_scheduler', 'monitor' and 'frequency' (unknown: {sorted(unknown)})."
            )
        optimizers.append(_expect_optimizers([entry["optimizer"]])[0])
        if "frequency" in entry:
            frequencies.append(int(entry["frequency"]))
        if entry.get("lr_scheduler") is not None:
            config = _scheduler_config(entry["lr_scheduler"], optimizers, default_monitor=entry.get("monitor"))
            configs.append(config)
    return optimizers, configs, frequencies


def _expect_optimizers(items: Sequence[Any]) -> list[Optimizer]:
    bad = [type(i).__name__ for i in items if not isinstance(i, Optimizer)]
    if bad:
        raise MisconfigurationException(
            f"configure_optimizers returned {bad} where a torch.optim.Optimizer was expected."
        )
    return list(items)


def _scheduler_config(spec: Any, optimizers: list[Optimizer], default_monitor: str | None = None) -> LRSchedulerConfig:
    if isinstance(spec, Mapping):
        if "scheduler" not in spec:
            raise MisconfigurationException(
                f"The lr_scheduler config {sorted(spec)} has no 'scheduler' key; write "
                '{"scheduler": scheduler, "interval": "epoch" | "step", "frequency": 1, "monitor": "val_loss"}.'
            )
        unknown = set(spec) - _SCHEDULER_KEYS
        if unknown:
            raise MisconfigurationException(
                f"Unknown lr_scheduler config keys {sorted(unknown)}; allowed: {sorted(_SCHEDULER_KEYS)}."
            )
        config = LRSchedulerConfig(**{k: v for k, v in spec.items() if k != "reduce_on_plateau"})
        config.monitor = config.monitor or default_monitor
    else:
        config = LRSchedulerConfig(scheduler=spec, monitor=default_monitor)
    if config.interval not in ("epoch", "step"):
        raise MisconfigurationException(
            f'lr_scheduler interval={config.interval!r} is not supported; use "epoch" or "step".'
        )
    config.reduce_on_plateau = isinstance(config.scheduler, _PLATEAU)
    if config.reduce_on_plateau and config.monitor is None:
        raise MisconfigurationException(
            "ReduceLROnPlateau needs a metric: return "
            '{"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}} '
            "with a key you log through self.log."
        )
    owner = getattr(config.scheduler, "optimizer", None)
    config.opt_idx = next((i for i, opt in enumerate(optimizers) if opt is owner), 0)
    return config


class LightningOptimizer:
    """What `self.optimizers()` returns: the user's optimizer, stepped through the precision plugin.

    Attribute access falls through to the wrapped optimizer, so `param_groups`, `state` and
    `zero_grad` behave as usual.
    """

    def __init__(self, optimizer: Optimizer, trainer: Trainer) -> None:
        self._optimizer = optimizer
        self._trainer = trainer

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    def step(self, closure: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        trainer = self._trainer

        def closure_then_hooks() -> Any:
            result = closure() if closure is not None else None
            trainer.precision_plugin.unscale_gradients(self._optimizer)
            trainer._before_optimizer_step(self._optimizer)
            return result

        result = trainer.precision_plugin.optimizer_step(self._optimizer, closure_then_hooks, skip_without_loss=False)
        trainer._count_optimizer_step()
        return result

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)

    def __repr__(self) -> str:
        return f"LightningOptimizer({self._optimizer!r})"
