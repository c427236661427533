"""What a monitoring callback can watch, and the error when it watches a key nobody logged.

A typo in `monitor=` is the most common misuse of ModelCheckpoint and EarlyStopping, so the
message lists every key that was logged together with the hook that logs it: the user sees
both the spelling and where to add a missing `self.log` call.
"""

from __future__ import annotations

from typing import Any


def logged_keys_with_hooks(trainer: Any) -> dict[str, str]:
    """Each key `self.log` produced in this run (with its _step/_epoch variants), mapped to its hook."""
    found: dict[str, str] = {}
    for results in (trainer._train_results, trainer.validate_loop.results):
        for metric in results.metrics.values():
            names = [metric.name]
            if metric.on_step and metric.on_epoch:
                names += [metric.name + "_step", metric.name + "_epoch"]
            for name in names:
                found.setdefault(name, metric.fx)
    for key in trainer.callback_metrics:
        found.setdefault(key, "a callback")
    return found


def missing_monitor_message(owner: str, monitor: str, trainer: Any) -> str:
    logged = logged_keys_with_hooks(trainer)
    listing = ", ".join(f"'{key}' ({hook})" for key, hook in sorted(logged.items())) or "none"
    return (
        f"{owner}(monitor={monitor!r}) found no metric {monitor!r}. Logged keys: {listing}. "
        f"Log it with self.log({monitor!r}, value) in a step or epoch hook, or monitor one of the logged keys."
    )
