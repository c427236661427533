"""`save_hyperparameters` / `hparams`, shared by LightningModule and LightningDataModule."""

from __future__ import annotations

import argparse
import copy
import inspect
from collections.abc import Iterable, Mapping, Sequence
from types import FrameType
from typing import Any

import torch

from runtime.rank_zero import rank_zero_warn


class AttributeDict(dict):
    """A dict whose keys read as attributes: `self.hparams.lr`."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(f"hparams has no '{key}'; saved keys: {sorted(self)}") from err

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __repr__(self) -> str:
        if not self:
            return ""
        width = max(len(str(k)) for k in self)
        return "\n".join(f'"{k}":'.ljust(width + 3) + f" {v!r}" for k, v in sorted(self.items()))


class HyperparametersMixin:
    """Collects `__init__` arguments so checkpoints can rebuild the object and loggers can record them."""

    __jit_unused_properties__: list[str] = ["hparams", "hparams_initial"]

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Sequence[str] | str | None = None,
        frame: FrameType | None = None,
        logger: bool = True,
    ) -> None:
        self._log_hyperparams = logger
        if frame is None:
            frame = inspect.currentframe().f_back  # type: ignore[union-attr]
        init_args = _collect_init_args(self, frame)
        ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
        if len(args) == 1 and isinstance(args[0], (Mapping, argparse.Namespace)) and not isinstance(args[0], str):
            hp = dict(vars(args[0]) if isinstance(args[0], argparse.Namespace) else args[0])
            # The init argument that held the dict, so load_from_checkpoint can pass it back by name.
            self._hparams_name = next((name for name, value in init_args.items() if value is args[0]), None)
        elif args:
            names = [a for a in args if isinstance(a, str)]
            missing = [n for n in names if n not in init_args]
            if missing:
                raise ValueError(
                    f"save_hyperparameters{tuple(args)}: {missing} are not arguments of {type(self).__name__}.__init__; "
                    f"name one of {sorted(init_args)}."
                )
            hp = {n: init_args[n] for n in names}
            self._hparams_name = "kwargs"
        else:
            hp = dict(init_args)
            self._hparams_name = "kwargs"
        for name in ignored:
            hp.pop(name, None)
        for name, value in hp.items():
            if isinstance(value, torch.nn.Module):
                rank_zero_warn(
                    f"Attribute '{name}' is an instance of `nn.Module` and is already saved during checkpointing. "
                    f"It is recommended to ignore them using `self.save_hyperparameters(ignore=['{name}'])`."
                )
        self._set_hparams(hp)
        self._hparams_initial = copy.deepcopy(self._hparams)

    def _set_hparams(self, hp: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_hparams", AttributeDict(hp))

    @property
    def hparams(self) -> AttributeDict:
        if not hasattr(self, "_hparams"):
            self._set_hparams({})
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        if not hasattr(self, "_hparams_initial"):
            return AttributeDict()
        return copy.deepcopy(self._hparams_initial)


def _collect_init_args(obj: object, frame: FrameType | None) -> dict[str, Any]:
    """Arguments of every `__init__` frame of `obj` up the call stack, the outermost subclass winning."""
    collected: dict[str, Any] = {}
    for init_frame in reversed(list(_init_frames_of(obj, frame))):
        collected.update(_frame_arguments(init_frame))
    return collected


def _init_frames_of(obj: object, frame: FrameType | None) -> Iterable[FrameType]:
    while frame is not None:
        if frame.f_code.co_name == "__init__" and frame.f_locals.get("self", None) is obj:
            yield frame
        frame = frame.f_back


def _frame_arguments(frame: FrameType) -> dict[str, Any]:
    info = inspect.getargvalues(frame)
    values = {name: info.locals[name] for name in info.args if name != "self" and name in info.locals}
    if info.varargs and info.locals.get(info.varargs):
        values[info.varargs] = info.locals[info.varargs]
    if info.keywords:
        values.update(info.locals.get(info.keywords, {}))
    values.pop("__class__", None)
    return values
