"""Where the model runs and how ranks talk: one process on one device, or DDP (`runtime.ddp`)."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from runtime.accelerator import DeviceChoice
from runtime.ddp import DDPStrategy
from runtime.exceptions import MisconfigurationException
from runtime.launchers import launched_externally
from runtime.rank_zero import rank_zero_warn

_DDP_NAMES = {
    "ddp": {},
    "ddp_spawn": {"start_method": "spawn"},
    "ddp_find_unused_parameters_true": {"find_unused_parameters": True},
    "ddp_find_unused_parameters_false": {"find_unused_parameters": False},
    "ddp_spawn_find_unused_parameters_true": {"start_method": "spawn", "find_unused_parameters": True},
    "ddp_spawn_find_unused_parameters_false": {"start_method": "spawn", "find_unused_parameters": False},
}


class SingleDeviceStrategy:
    world_size = 1
    global_rank = 0
    local_rank = 0
    node_rank = 0
    is_global_zero = True
    is_distributed = False
    no_sync_context = None
    before_manual_backward = None

    def __init__(self, device_choice: DeviceChoice) -> None:
        self.device_choice = device_choice
        self.root_device = device_choice.root_device

    def launch(self, trainer: Any, run: Callable[[], Any]) -> Any:
        return run()

    def setup_environment(self) -> None:
        """One process: nobody to start, no group to join."""

    def teardown(self, failed: bool) -> None:
        """Nothing was started or joined."""

    def model_to_device(self, module: torch.nn.Module) -> None:
        module.to(self.root_device)

    def wrap_for_training(self, module: torch.nn.Module) -> torch.nn.Module:
        """The trainer calls `training_step` on the module itself: nothing in between."""
        return module

    def reduce_for_logging(self, value: Any, reduce_fx: str | Callable) -> Any:
        """With one process there is nothing to reduce across."""
        return value

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    def barrier(self, name: str | None = None) -> None:
        """Nothing to wait for in a single process."""

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj


def make_strategy(strategy: Any, device_choice: DeviceChoice, num_nodes: int) -> SingleDeviceStrategy | DDPStrategy:
    """Lightning's strategy spellings: 'auto' is one device, or DDP when several devices or nodes are asked for."""
    if isinstance(strategy, DDPStrategy):
        strategy.configure(device_choice, num_nodes)
        return strategy
    name = strategy.lower() if isinstance(strategy, str) else type(strategy).__name__
    if name in _DDP_NAMES:
        ddp = DDPStrategy(**_DDP_NAMES[name])
        ddp.configure(device_choice, num_nodes)
        return ddp
    if name not in ("auto", "single_device", "SingleDeviceStrategy"):
        raise MisconfigurationException(
            f"strategy={strategy!r} is not supported by this runtime, which trains on one device or with DDP "
            "('ddp', 'ddp_spawn'). For FSDP, DeepSpeed and the other strategies convert the script with "
            "`migrate convert --target lightning` and train it with lightning.pytorch."
        )
    if device_choice.num_devices > 1 or num_nodes > 1:
        if name != "auto":
            raise MisconfigurationException(
                f"strategy={strategy!r} trains on one device, but devices={device_choice.num_devices}, "
                f"num_nodes={num_nodes} asks for more; use strategy='ddp' (or 'auto'), or devices=1."
            )
        return make_strategy("ddp", device_choice, num_nodes)
    if launched_externally() and int(os.environ["WORLD_SIZE"]) > 1:
        rank_zero_warn(
            f"This process is one of WORLD_SIZE={os.environ['WORLD_SIZE']} started by a launcher, but this Trainer "
            "trains on one device, in each process separately. To train them as one run, pass "
            "devices=<processes per node> (and num_nodes=<nodes>)."
        )
    return SingleDeviceStrategy(device_choice)
