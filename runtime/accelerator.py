"""Choosing the device from `accelerator=` and `devices=`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from runtime.exceptions import MisconfigurationException

_ALIASES = {"gpu": "cuda", "cuda": "cuda", "cpu": "cpu", "mps": "mps", "auto": "auto"}


@dataclass(frozen=True)
class DeviceChoice:
    accelerator: str
    device_ids: tuple[int, ...]

    @property
    def root_device(self) -> torch.device:
        if self.accelerator == "cpu":
            return torch.device("cpu")
        return torch.device(self.accelerator, self.device_ids[0])

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)


def choose_device(accelerator: Any, devices: Any) -> DeviceChoice:
    """Resolve Lightning's accelerator/devices spellings to concrete device ids.

    Raises with the argument to use instead when the hardware asked for is missing.
    """
    if not isinstance(accelerator, str) or accelerator.lower() not in _ALIASES:
        raise MisconfigurationException(
            f"accelerator={accelerator!r} is not supported; use one of 'cpu', 'cuda' (or 'gpu'), 'mps', 'auto'."
        )
    kind = _ALIASES[accelerator.lower()]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    available = _available_count(kind)
    if available == 0:
        fallback = "'mps'" if _mps_available() else "'cpu'"
        raise MisconfigurationException(
            f"accelerator={accelerator!r} was requested but no {kind.upper()} device is available on this machine. "
            f"Use accelerator={fallback} or accelerator='auto'."
        )
    ids = _parse_devices(devices, kind, available)
    return DeviceChoice(kind, ids)


def _parse_devices(devices: Any, kind: str, available: int) -> tuple[int, ...]:
    if devices in ("auto", None, -1, "-1"):
        count = 1 if kind == "cpu" else available
        return tuple(range(count))
    if isinstance(devices, str):
        text = devices.strip()
        devices = [int(p) for p in text.split(",") if p.strip()] if "," in text else int(text)
    if isinstance(devices, int):
        if devices <= 0:
            raise MisconfigurationException(f"devices={devices} must be a positive int, a list of ids, or 'auto'.")
        if kind != "cpu" and devices > available:
            raise MisconfigurationException(
                f"devices={devices} asks for more {kind.upper()} devices than the {available} available; "
                f"use devices={available} or fewer."
            )
        return tuple(range(devices))
    if isinstance(devices, (list, tuple)):
        ids = tuple(int(d) for d in devices)
        bad = [d for d in ids if d < 0 or (kind != "cpu" and d >= available)]
        if not ids or bad:
            raise MisconfigurationException(
                f"devices={list(devices)} names ids that do not exist; valid {kind.upper()} ids are 0..{available - 1}."
            )
        return ids
    raise MisconfigurationException(f"devices={devices!r} is not understood; use an int, a list of ids, or 'auto'.")


def _available_count(kind: str) -> int:
    if kind == "cpu":
        return 1
    if kind == "cuda":
        return torch.cuda.device_count()
    return 1 if _mps_available() else 0


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
