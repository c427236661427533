"""Where the model runs and how ranks talk. One process, one device, for now."""

from __future__ import annotations

from typing import Any, Callable

import torch

from runtime.accelerator import DeviceChoice
from runtime.exceptions import MisconfigurationException


class SingleDeviceStrategy:
    world_size = 1
    global_rank = 0
    local_rank = 0
    node_rank = 0
    is_global_zero = True

    def __init__(self, device_choice: DeviceChoice) -> None:
        self.device_choice = device_choice
        self.root_device = device_choice.root_device

    def model_to_device(self, module: torch.nn.Module) -> None:
        module.to(self.root_device)

    def reduce_for_logging(self, value: Any, reduce_fx: str | Callable) -> Any:
        """With one process there is nothing to reduce across."""
        return value

    def barrier(self, name: str | None = None) -> None:
        """Nothing to wait for in a single process."""

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj


def make_strategy(strategy: Any, device_choice: DeviceChoice, num_nodes: int) -> SingleDeviceStrategy:
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    if device_choice.num_devices > 1 or num_nodes > 1:
        raise MisconfigurationException(
            f"devices={device_choice.num_devices}, num_nodes={num_nodes} needs multi-process training, which this "
            "runtime version does not provide yet; use devices=1, or `--target lightning` for DDP/FSDP."
        )
    if name not in ("auto", "single_device", "SingleDeviceStrategy", "ddp", "ddp_spawn"):
        raise MisconfigurationException(
            f"strategy={strategy!r} is not supported; use 'auto' (single device) or switch to lightning.pytorch "
            "for FSDP/DeepSpeed."
        )
    return SingleDeviceStrategy(device_choice)
