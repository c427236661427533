"""Data-parallel training on torch.distributed: one process per device, gradients averaged by DDP.

Every rank runs the same loops on its own shard of the data. The pieces that make N
processes behave as one run live here: joining the process group, wrapping the module in
`DistributedDataParallel`, and the few collectives the trainer needs (reducing logged
values, agreeing on stop decisions, broadcasting rank 0's view, barriers).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from runtime import launchers
from runtime.accelerator import DeviceChoice
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_only

INIT_TIMEOUT_ENV = "RUNTIME_DIST_INIT_TIMEOUT"
TIMEOUT_ENV = "RUNTIME_DIST_TIMEOUT"
_DEFAULT_INIT_TIMEOUT_S = 300.0
_DEFAULT_TIMEOUT_S = 1800.0
_REDUCE_OPS = {"mean": "SUM", "sum": "SUM", "max": "MAX", "min": "MIN"}
_REDUCE_FUNCTIONS = {torch.mean: "mean", torch.sum: "sum", torch.max: "max", torch.min: "min"}

# The rendezvous store outlives process groups: a process that runs fit, then test, joins a
# fresh group for each under its own key prefix, because a torchrun agent's store keeps the
# keys of groups already destroyed.
_store: dist.Store | None = None
_groups_created = 0


class DDPStrategy:
    """`strategy="ddp"` (`start_method="popen"`) or `"ddp_spawn"` (`start_method="spawn"`).

    Keyword arguments other than the ones named go to `DistributedDataParallel`, as in
    Lightning's `DDPStrategy(find_unused_parameters=True)`.
    """

    is_distributed = True

    def __init__(self, *, start_method: str = "popen", process_group_backend: str | None = None,
                 timeout: datetime.timedelta | None = None, **ddp_kwargs: Any) -> None:
        if start_method not in ("popen", "spawn"):
            raise MisconfigurationException(
                f"DDPStrategy(start_method={start_method!r}) is not supported; use 'popen' (strategy='ddp') or "
                "'spawn' (strategy='ddp_spawn')."
            )
        self.start_method = start_method
        self.process_group_backend = process_group_backend
        self.timeout = timeout
        self.ddp_kwargs = ddp_kwargs
        self.no_sync_context: Callable[[], contextlib.AbstractContextManager] | None = None
        self.before_manual_backward: Callable[[torch.Tensor], None] | None = None
        self._device_choice: DeviceChoice | None = None
        self._num_nodes = 1
        self._ranks = launchers.Ranks(world_size=1, global_rank=0, local_rank=0, node_rank=0)
        self._ddp: DistributedDataParallel | None = None
        self._owns_group = False

    # --- configuration, from Trainer(...) ----------------------------------------------------------------
    def configure(self, device_choice: DeviceChoice, num_nodes: int) -> None:
        """Fix the device set and node count; ranks come from the launcher's environment when there is one."""
        if num_nodes < 1:
            raise MisconfigurationException(f"num_nodes={num_nodes} must be >= 1.")
        if not dist.is_available():
            raise MisconfigurationException(
                "strategy='ddp' needs torch.distributed, which this build of torch does not include; install a "
                "torch build with distributed support, or train with devices=1."
            )
        if device_choice.accelerator == "mps":
            raise MisconfigurationException(
                "DDP does not run on MPS (torch has no MPS process-group backend); use accelerator='mps' with "
                "devices=1, or accelerator='cpu' for several processes."
            )
        self._device_choice = device_choice
        self._num_nodes = num_nodes
        self._ranks = launchers.ranks_from_environment(device_choice.num_devices, num_nodes)

    @property
    def world_size(self) -> int:
        return self._ranks.world_size

    @property
    def global_rank(self) -> int:
        return self._ranks.global_rank

    @property
    def local_rank(self) -> int:
        return self._ranks.local_rank

    @property
    def node_rank(self) -> int:
        return self._ranks.node_rank

    @property
    def is_global_zero(self) -> bool:
        return self._ranks.global_rank == 0

    @property
    def root_device(self) -> torch.device:
        choice = self._device_choice
        if choice.accelerator == "cpu":
            return torch.device("cpu")
        return torch.device(choice.accelerator, choice.device_ids[self.local_rank])

    @property
    def backend(self) -> str:
        if self.process_group_backend is not None:
            return self.process_group_backend
        return "nccl" if self.root_device.type == "cuda" else "gloo"

    # --- starting the ranks and joining the group ----------------------------------------------------
    def launch(self, trainer: Any, run: Callable[[], Any]) -> Any:
        """Run one trainer entry point on every rank; the other ranks are started here when nobody else did."""
        world_size = self._device_choice.num_devices * self._num_nodes
        if world_size > 1 and not launchers.launched_externally():
            if self.start_method == "spawn":
                return launchers.spawn(trainer, run, self._device_choice.num_devices, self._num_nodes)
            launchers.start_local_ranks(self._device_choice.num_devices, self._num_nodes)
        return run()

    def setup_environment(self) -> None:
        """Read this process's rank, point rank-zero helpers and CUDA at it, and join the process group."""
        self._ranks = launchers.ranks_from_environment(self._device_choice.num_devices, self._num_nodes)
        rank_zero_only.rank = self.global_rank
        launchers.exit_with_parent()
        device = self.root_device
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if dist.is_initialized():
            self._owns_group = False
            return
        self._join_group()
        self._owns_group = True

    def _join_group(self) -> None:
        global _groups_created
        store = _rendezvous_store(self.world_size, self.global_rank)
        timeout = self.timeout or datetime.timedelta(seconds=_seconds_from_env(TIMEOUT_ENV, _DEFAULT_TIMEOUT_S))
        _groups_created += 1
        excepthook = sys.excepthook
        dist.init_process_group(self.backend, store=dist.PrefixStore(f"runtime/{_groups_created}", store),
                                rank=self.global_rank, world_size=self.world_size, timeout=timeout)
        if _groups_created > 1:
            # torch wraps the excepthook to prefix "[rankN]: " at every init; once is enough.
            sys.excepthook = excepthook

    def teardown(self, failed: bool) -> None:
        """Leave the group once every rank got here; after a failure, leave at once and stop the ranks we started.

        Leaving first makes ranks blocked in a collective with this one fail at once instead of at the timeout.
        """
        self._ddp = None
        self.no_sync_context = None
        self.before_manual_backward = None
        if not failed and dist.is_initialized():
            self.barrier("teardown")
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False
        if failed:
            launchers.stop_local_ranks()

    # --- the model ---------------------------------------------------------------------------------------
    def model_to_device(self, module: nn.Module) -> None:
        module.to(self.root_device)

    def wrap_for_training(self, module: nn.Module) -> Any:
        """What the trainer calls `training_step` on: DDP's forward, so backward all-reduces the gradients."""
        device = self.root_device
        device_ids = [device.index] if device.type == "cuda" else None
        self._ddp = DistributedDataParallel(_TrainingStepForward(module), device_ids=device_ids, **self.ddp_kwargs)
        self.no_sync_context = self._ddp.no_sync
        self.before_manual_backward = self._arm_gradient_sync
        return _DistributedSteps(self._ddp, module)

    def _arm_gradient_sync(self, loss: torch.Tensor) -> None:
        """Arm DDP's gradient all-reduce for a backward that runs inside training_step (manual optimization).

        DDP arms it at the end of its forward, which here is after the backward. `_DistributedSteps`
        stops DDP from arming it then (with no backward to follow, the next step would fail), and
        each `manual_backward` arms it here instead. This calls the reducer DDP keeps for itself, as
        Lightning does: torch has no public call for it.
        """
        if not torch.is_grad_enabled():
            return
        ddp = self._ddp
        ddp.require_forward_param_sync = True
        outputs = [loss] if ddp.find_unused_parameters and not ddp.static_graph else []
        ddp.reducer.prepare_for_backward(outputs)

    # --- collectives -------------------------------------------------------------------------------------
    def reduce_for_logging(self, value: Any, reduce_fx: str | Callable) -> torch.Tensor:
        """`self.log(..., sync_dist=True)`: the value reduced over all ranks, the same on every rank."""
        name = _reduce_name(reduce_fx)
        if isinstance(value, torch.Tensor):
            tensor = value.detach().clone().to(self.root_device)
        else:
            tensor = torch.tensor(value, device=self.root_device)
        if name == "mean" and not tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, _REDUCE_OPS[name]))
        if name == "mean":
            tensor = tensor / self.world_size
        return tensor

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """True when every rank (`all`) or any rank decided so; ranks that disagree would run different loops."""
        if not dist.is_initialized():
            return decision
        votes = torch.tensor(int(bool(decision)), device=self.root_device)
        dist.all_reduce(votes, op=dist.ReduceOp.SUM)
        return bool(votes.item() == self.world_size) if all else bool(votes.item() > 0)

    def barrier(self, name: str | None = None) -> None:
        if not dist.is_initialized():
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.root_device.index])
        else:
            dist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if not dist.is_initialized():
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]


class _TrainingStepForward(nn.Module):
    """DDP hooks gradient averaging into the backward of what its forward returned, so its forward is the step."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.training_step(*args, **kwargs)


class _DistributedSteps:
    """Stands where the trainer expects the LightningModule when it calls `training_step`."""

    def __init__(self, ddp: DistributedDataParallel, module: nn.Module) -> None:
        self._ddp = ddp
        self._module = module

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        if self._module.automatic_optimization:
            return self._ddp(*args, **kwargs)
        # Manual optimization: its backward ran inside; see DDPStrategy._arm_gradient_sync.
        self._ddp.require_backward_grad_sync = False
        try:
            return self._ddp(*args, **kwargs)
        finally:
            self._ddp.require_backward_grad_sync = True


def _rendezvous_store(world_size: int, rank: int) -> dist.Store:
    """Rank 0 hosts (or torchrun's agent hosts) a TCP store at MASTER_ADDR:MASTER_PORT; every rank connects to it."""
    global _store
    if world_size == 1:
        return dist.HashStore()
    if _store is not None:
        return _store
    seconds = _seconds_from_env(INIT_TIMEOUT_ENV, _DEFAULT_INIT_TIMEOUT_S)
    address = f"MASTER_ADDR={os.environ.get('MASTER_ADDR')} MASTER_PORT={os.environ.get('MASTER_PORT')}"
    try:
        _store, _, _ = next(dist.rendezvous("env://", timeout=datetime.timedelta(seconds=seconds)))
        atexit.register(_release_store)
    except (RuntimeError, TimeoutError, ValueError) as err:
        raise RuntimeError(
            f"Rank {rank} of {world_size} could not join the process group at {address} within {seconds:g} s: "
            f"{str(err).rstrip('.')}. Check that all {world_size} processes were started, that MASTER_ADDR and "
            "MASTER_PORT are the same for every rank and reachable from this one (no firewall in between), or wait "
            f"longer with {INIT_TIMEOUT_ENV}=<seconds>."
        ) from err
    return _store


def _release_store() -> None:
    """Drops the store while the interpreter still runs: left to interpreter shutdown, its C++
    side can be torn down with a thread still attached, which aborts the process (SIGABRT,
    "terminate called without an active exception") after a run that succeeded."""
    global _store
    _store = None


def _seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise MisconfigurationException(f"{name}={text!r} must be a positive number of seconds.")
    return seconds


def _reduce_name(reduce_fx: str | Callable) -> str:
    name = reduce_fx.lower() if isinstance(reduce_fx, str) else _REDUCE_FUNCTIONS.get(reduce_fx)
    name = "mean" if name == "avg" else name
    if name not in _REDUCE_OPS:
        raise MisconfigurationException(
            f"self.log(..., sync_dist=True) cannot reduce with reduce_fx={reduce_fx!r} across processes; use "
            "'mean', 'sum', 'max' or 'min', or log without sync_dist and reduce yourself."
        )
    return name
