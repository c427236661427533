"""Calling hooks only where they are implemented.

A hook call in the step path costs a Python call per listener, so the lists are built once
per run from the callbacks and the module that actually override each hook.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from runtime.callbacks.callback import Callback, overrides
from runtime.hooks import CheckpointHooks, DataHooks, ModelHooks

_MODULE_BASES = (ModelHooks, DataHooks, CheckpointHooks)
# Optional hooks inside every optimizer step: checked by set membership, the cheapest test per step.
_STEP_PATH_HOOKS = ("on_before_zero_grad", "on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _module_overrides(module: Any, name: str) -> bool:
    impl = getattr(type(module), name, None)
    if impl is None:
        return False
    return all(impl is not getattr(base, name, None) for base in _MODULE_BASES)


class HookDispatcher:
    def __init__(self, trainer: Any, module: Any, callbacks: list[Callback]) -> None:
        self._trainer = trainer
        self._module = module
        self._callbacks = callbacks
        self._cache: dict[str, tuple[list[Callable[..., Any]], Callable[..., Any] | None]] = {}
        self.listened_step_hooks = frozenset(name for name in _STEP_PATH_HOOKS if self.has(name))

    def _listeners(self, name: str) -> tuple[list[Callable[..., Any]], Callable[..., Any] | None]:
        found = self._cache.get(name)
        if found is None:
            callback_fns = [
                functools.partial(getattr(cb, name), self._trainer, self._module)
                for cb in self._callbacks
                if overrides(cb, Callback, name)
            ]
            module_fn = getattr(self._module, name) if _module_overrides(self._module, name) else None
            found = (callback_fns, module_fn)
            self._cache[name] = found
        return found

    def has(self, name: str) -> bool:
        """Whether anything listens to `name`; lets the step path skip building the hook's arguments."""
        callback_fns, module_fn = self._listeners(name)
        return bool(callback_fns) or module_fn is not None

    def module_hook(self, name: str) -> Callable[..., Any] | None:
        return self._listeners(name)[1]

    def callback_hooks(self, name: str) -> list[Callable[..., Any]]:
        return self._listeners(name)[0]

    def batch_hooks(self, name: str) -> list[Callable[..., Any]]:
        """Callbacks then the module, as one list (for hooks whose return value is ignored)."""
        callback_fns, module_fn = self._listeners(name)
        return callback_fns + ([module_fn] if module_fn is not None else [])

    def call(self, name: str, *args: Any) -> Any:
        callback_fns, module_fn = self._listeners(name)
        for fn in callback_fns:
            fn(*args)
        if module_fn is not None:
            return module_fn(*args)
        return None
