"""Moving arbitrarily nested batches to a device."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable

import torch


def apply_to_tensors(data: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """Apply `fn` to every tensor inside tensors, lists, tuples, namedtuples, mappings and dataclasses.

    Objects that are not containers but have a `.to` method (custom batch types) are handed
    to `fn` as well, as Lightning does.
    """
    if isinstance(data, torch.Tensor):
        return fn(data)
    if isinstance(data, (list, tuple)):
        items = [apply_to_tensors(item, fn) for item in data]
        if isinstance(data, tuple) and hasattr(data, "_fields"):
            return type(data)(*items)
        return type(data)(items)
    if isinstance(data, Mapping):
        moved = {key: apply_to_tensors(value, fn) for key, value in data.items()}
        try:
            result = type(data)()
        except TypeError:
            return moved
        result.update(moved)
        return result
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return _replace_dataclass(data, fn)
    if callable(getattr(data, "to", None)):
        return fn(data)
    return data


def move_data_to_device(batch: Any, device: torch.device | str) -> Any:
    device = torch.device(device)
    non_blocking = device.type in ("cuda", "mps")
    return apply_to_tensors(batch, lambda t: t.to(device, non_blocking=non_blocking))


def _replace_dataclass(data: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    values = {f.name: apply_to_tensors(getattr(data, f.name), fn) for f in dataclasses.fields(data)}
    result = dataclasses.replace(data, **{f.name: values[f.name] for f in dataclasses.fields(data) if f.init})
    for field in dataclasses.fields(data):
        if not field.init:
            object.__setattr__(result, field.name, values[field.name])
    return result
