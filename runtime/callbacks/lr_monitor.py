"""`LearningRateMonitor`: send each optimizer's learning rate (and momentum) to the loggers.

Keys follow Lightning: `lr-<Optimizer>` (or the scheduler config's `name`), `-<k>` for the
k-th further optimizer of the same class, `/pg<i>` or `/<group name>` for parameter groups,
and a `-momentum` / `-weight_decay` suffix.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from runtime.callbacks.callback import Callback
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_warn


class LearningRateMonitor(Callback):
    def __init__(self, logging_interval: str | None = None, log_momentum: bool = False,
                 log_weight_decay: bool = False) -> None:
        if logging_interval not in (None, "step", "epoch"):
            raise MisconfigurationException(
                f"LearningRateMonitor(logging_interval={logging_interval!r}): use 'step', 'epoch' or None "
                "(each scheduler at its own interval)."
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.lrs: dict[str, list[float]] = {}
        self.last_momentum_values: dict[str, float | None] = {}
        self.last_weight_decay_values: dict[str, float | None] = {}

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.loggers:
            raise MisconfigurationException(
                "Cannot use `LearningRateMonitor` callback with `Trainer` that has no logger; pass "
                "logger=True (CSV) or a logger instance, or remove the callback."
            )
        if self.log_momentum and not all(_has_momentum(opt) for opt, _ in self._named_optimizers(trainer)):
            rank_zero_warn(
                "You have set log_momentum=True, but some optimizers do not have momentum. This will log a value 0 "
                "for the momentum.",
                category=RuntimeWarning,
            )
        names = [name for _, group_names in self._named_optimizers(trainer) for name in group_names]
        self.lrs = {name: [] for name in names}
        self.last_momentum_values = {f"{name}-momentum": None for name in names}
        self.last_weight_decay_values = {f"{name}-weight_decay": None for name in names}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        loop = trainer.fit_loop
        should_log = (loop.batches_that_stepped + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop
        if self.logging_interval != "epoch" and should_log:
            self._log(trainer, "step" if self.logging_interval is None else "any")

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.logging_interval != "step":
            self._log(trainer, "epoch" if self.logging_interval is None else "any")

    def _log(self, trainer: Any, interval: str) -> None:
        stats = self._extract_stats(trainer, interval)
        if stats:
            for logger in trainer.loggers:
                logger.log_metrics(stats, step=trainer.fit_loop.batches_that_stepped)

    def _extract_stats(self, trainer: Any, interval: str) -> dict[str, float]:
        """Optimizers with a scheduler log at the scheduler's interval; the others at every call."""
        intervals = {id(config.scheduler.optimizer): config.interval for config in trainer.lr_scheduler_configs}
        stats: dict[str, float] = {}
        for optimizer, group_names in self._named_optimizers(trainer):
            own_interval = intervals.get(id(optimizer))
            if own_interval is not None and interval not in (own_interval, "any"):
                continue
            for group, name in zip(optimizer.param_groups, group_names):
                stats.update(self._group_stats(optimizer, group, name))
        trainer._callback_metrics.update(
            {name: torch.tensor(value, device=trainer.root_device) for name, value in stats.items()}
        )
        return stats

    def _group_stats(self, optimizer: torch.optim.Optimizer, group: dict[str, Any], name: str) -> dict[str, float]:
        stats = {name: group["lr"]}
        self.lrs.setdefault(name, []).append(group["lr"])
        if self.log_momentum:
            momentum = group["betas"][0] if "betas" in optimizer.defaults else group.get("momentum", 0)
            stats[f"{name}-momentum"] = momentum
            self.last_momentum_values[f"{name}-momentum"] = momentum
        if self.log_weight_decay:
            decay = group.get("weight_decay", 0)
            stats[f"{name}-weight_decay"] = decay
            self.last_weight_decay_values[f"{name}-weight_decay"] = decay
        return stats

    def _named_optimizers(self, trainer: Any) -> list[tuple[torch.optim.Optimizer, list[str]]]:
        """Each optimizer with one key per parameter group; scheduled optimizers first, as Lightning orders them."""
        named: list[tuple[torch.optim.Optimizer, list[str]]] = []
        seen: list[torch.optim.Optimizer] = []
        per_class: Counter[type] = Counter()
        candidates = [(config.scheduler.optimizer, config.name) for config in trainer.lr_scheduler_configs]
        candidates += [(optimizer, None) for optimizer in trainer.optimizers]
        for optimizer, config_name in candidates:
            if any(optimizer is other for other in seen):
                continue
            seen.append(optimizer)
            if config_name is None:
                per_class[type(optimizer)] += 1
            base = config_name if config_name is not None else f"lr-{type(optimizer).__name__}"
            count = per_class[type(optimizer)]
            if config_name is None and count > 1:
                base = f"{base}-{count - 1}"
            named.append((optimizer, _group_names(base, optimizer.param_groups)))
        return named


def _group_names(base: str, groups: list[dict[str, Any]]) -> list[str]:
    names = [group.get("name") for group in groups]
    duplicates = {name for name in names if name is not None and names.count(name) > 1}
    if duplicates:
        raise MisconfigurationException(
            f"A single `Optimizer` cannot have multiple parameter groups with identical `name` values. {base} has "
            f"duplicated parameter group names {sorted(duplicates)}; give each group a distinct 'name'."
        )
    if len(groups) == 1:
        return [f"{base}/{names[0]}" if names[0] else base]
    return [f"{base}/{name or f'pg{index + 1}'}" for index, name in enumerate(names)]


def _has_momentum(optimizer: torch.optim.Optimizer) -> bool:
    return "momentum" in optimizer.defaults or "betas" in optimizer.defaults
