"""Starting the ranks of a multi-process run when no launcher (torchrun) did, and ending it when one dies.

Self-launch (`strategy="ddp"`): the process the user started becomes rank 0 and runs the same
command again for each other local rank, with that rank in the environment; those processes
reach the same Trainer call and join the group. Rank 0 watches them from a thread and ends the
run when one exits with an error, and each of them exits when rank 0 is gone, so no process
sits in a collective waiting for a peer that no longer exists.

Spawn (`strategy="ddp_spawn"`): the main process starts fresh workers with
`torch.multiprocessing`, hands each the pickled trainer and entry point, waits for them, and
takes back rank 0's weights and results. It works where there is no script to re-run (a
notebook, `python -c`), at the price of pickling the module and the dataloaders.
"""

from __future__ import annotations

import atexit
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch.multiprocessing

from runtime.exceptions import MisconfigurationException

_LAUNCHER_PID_ENV = "RUNTIME_LAUNCHER_PID"
_POLL_SECONDS = 0.2
_TERMINATE_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Ranks:
    world_size: int
    global_rank: int
    local_rank: int
    node_rank: int


def launched_externally() -> bool:
    """True under torchrun, in a rank this module started, and in rank 0 once it has started the others."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def ranks_from_environment(num_devices: int, num_nodes: int) -> Ranks:
    """This process's place in a run of `num_devices` processes on each of `num_nodes` nodes."""
    expected = num_devices * num_nodes
    if not launched_externally():
        _refuse_foreign_launcher(expected)
        node_rank = _node_rank_from_env()
        return Ranks(expected, node_rank * num_devices, 0, node_rank)
    world_size = int(os.environ["WORLD_SIZE"])
    global_rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if world_size != expected:
        raise MisconfigurationException(
            f"The launcher started WORLD_SIZE={world_size} processes, but Trainer(devices={num_devices}, "
            f"num_nodes={num_nodes}) expects {expected}. Make them agree: devices = processes per node "
            "(torchrun --nproc_per_node) and num_nodes = number of nodes (torchrun --nnodes)."
        )
    if local_rank >= num_devices:
        raise MisconfigurationException(
            f"LOCAL_RANK={local_rank} has no device: Trainer(devices={num_devices}) gives each node "
            f"{num_devices}; start at most {num_devices} processes per node."
        )
    return Ranks(world_size, global_rank, local_rank, _node_rank_from_env(default=global_rank // num_devices))


def _node_rank_from_env(default: int = 0) -> int:
    for key in ("NODE_RANK", "GROUP_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return default


def _refuse_foreign_launcher(expected: int) -> None:
    """srun with several tasks, without torchrun, would have every task start its own set of ranks."""
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1"))
    if tasks > 1 and expected > 1:
        raise MisconfigurationException(
            f"SLURM started {tasks} tasks, and this runtime does not read SLURM's rank variables. Start one task "
            "per node that runs `torchrun --nnodes ... --nproc_per_node ... train.py`, or convert with "
            "`migrate convert --target lightning`, whose Trainer understands SLURM."
        )


# --- self-launch ---------------------------------------------------------------------------------------
class _LocalRanks:
    """The processes rank 0 started: reported and stopped when one fails, waited for at exit."""

    def __init__(self, processes: dict[int, subprocess.Popen]) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._stopping = False
        threading.Thread(target=self._watch, name="runtime-rank-watcher", daemon=True).start()
        atexit.register(self._wait_at_exit)

    def _watch(self) -> None:
        while not self._stopping:
            if self._failures():
                self._end_run()
            if all(process.poll() == 0 for process in self.processes.values()):
                return
            time.sleep(_POLL_SECONDS)

    def _wait_at_exit(self) -> None:
        """Rank 0 finishing first must not orphan ranks still tearing down; a rank failing late still fails the run."""
        while not self._stopping:
            if self._failures():
                self._end_run()
            if all(process.poll() is not None for process in self.processes.values()):
                return
            time.sleep(_POLL_SECONDS)

    def _failures(self) -> list[tuple[int, int]]:
        """(rank, exit code) of every rank that has exited with an error."""
        codes = {rank: process.poll() for rank, process in self.processes.items()}
        return [(rank, code) for rank, code in codes.items() if code not in (None, 0)]

    def _end_run(self) -> None:
        """A rank failed: say which, stop the others, and end this process too (its peers are gone)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        failures = self._failures()
        self._report(failures)
        self._terminate()
        sys.stdout.flush()
        sys.stderr.flush()
        code = failures[0][1]
        os._exit(code if 0 < code < 256 else 1)

    def stop(self) -> None:
        """Rank 0 failed: let the others fail on their own for a moment (a rank that crashed first may still be
        exiting), name the ranks that did, and stop the rest."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        deadline = time.monotonic() + _TERMINATE_GRACE_SECONDS
        while time.monotonic() < deadline and any(process.poll() is None for process in self.processes.values()):
            time.sleep(_POLL_SECONDS)
        self._report(self._failures())
        self._terminate()

    def _report(self, failures: list[tuple[int, int]]) -> None:
        for rank, code in failures:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            sys.stderr.write(f"\nruntime: rank {rank} (pid {self.processes[rank].pid}) {how}; ending the run on all "
                             "ranks. Its error output is above.\n")
        sys.stderr.flush()

    def _terminate(self) -> None:
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + _TERMINATE_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_local_ranks: _LocalRanks | None = None
_watching_parent = False


def start_local_ranks(num_devices: int, num_nodes: int) -> None:
    """Run this program again for local ranks 1..num_devices-1, and make this process rank 0 of its node."""
    global _local_ranks
    command = rerun_command()
    node_rank = _node_rank_from_env()
    address, port = _master_address(num_nodes)
    shared = {
        "WORLD_SIZE": str(num_devices * num_nodes),
        "LOCAL_WORLD_SIZE": str(num_devices),
        "NODE_RANK": str(node_rank),
        "MASTER_ADDR": address,
        "MASTER_PORT": str(port),
    }
    processes = {}
    for local_rank in range(1, num_devices):
        rank = node_rank * num_devices + local_rank
        env = {**os.environ, **shared, "RANK": str(rank), "LOCAL_RANK": str(local_rank),
               _LAUNCHER_PID_ENV: str(os.getpid())}
        processes[rank] = subprocess.Popen(command, env=env)
    # Later Trainers in this process (fit, then test) then see a launched run and start nobody.
    os.environ.update(shared, RANK=str(node_rank * num_devices), LOCAL_RANK="0")
    _local_ranks = _LocalRanks(processes)


def stop_local_ranks() -> None:
    if _local_ranks is not None:
        _local_ranks.stop()


def rerun_command() -> list[str]:
    """The command line that started this process: `python script.py ...` or `python -m package.module ...`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        name = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [sys.executable, "-m", name, *sys.argv[1:]]
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c" or not os.path.isfile(script):
        raise MisconfigurationException(
            "strategy='ddp' starts the other ranks by running this script again, and this process was not started "
            "from a script file (a notebook or `python -c`?). Use strategy='ddp_spawn', or launch the script with "
            "`torchrun --nproc_per_node=N script.py`."
        )
    return [sys.executable, os.path.abspath(script), *sys.argv[1:]]


def _master_address(num_nodes: int) -> tuple[str, int]:
    if num_nodes > 1:
        missing = [key for key in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK") if key not in os.environ]
        if missing:
            raise MisconfigurationException(
                f"num_nodes={num_nodes} needs {', '.join(missing)} in the environment of every node (the address "
                "and a free port of node 0, and this node's index), or launch with torchrun --nnodes."
            )
    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(os.environ["MASTER_PORT"]) if "MASTER_PORT" in os.environ else free_port()
    return address, port


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exit_with_parent() -> None:
    """In a rank started by `start_local_ranks`: exit when rank 0 is gone instead of waiting on it forever."""
    global _watching_parent
    text = os.environ.get(_LAUNCHER_PID_ENV)
    if text is None or _watching_parent:
        return
    _watching_parent = True
    parent = int(text)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        sys.stderr.write(f"\nruntime: rank {os.environ.get('RANK')} lost rank 0 (pid {parent}); exiting.\n")
        sys.stderr.flush()
        os._exit(1)

    threading.Thread(target=watch, name="runtime-parent-watcher", daemon=True).start()


# --- spawn ---------------------------------------------------------------------------------------------
def spawn(trainer: Any, run: Callable[[], Any], num_devices: int, num_nodes: int) -> Any:
    """Run `run` in `num_devices` fresh processes; rank 0's result and trained state come back to this one."""
    address, port = _master_address(num_nodes)
    node_rank = _node_rank_from_env()
    queue = torch.multiprocessing.get_context("spawn").SimpleQueue()
    # Pickled by hand: torch's own pickling would hand every worker the same shared-memory parameters,
    # and each rank's optimizer would step all of them.
    job = pickle.dumps((trainer, run))
    workers = torch.multiprocessing.start_processes(
        _spawned_rank, args=(job, queue, num_devices, num_nodes, node_rank, address, port),
        nprocs=num_devices, join=False, start_method="spawn",
    )
    output = None
    # Read while waiting: a worker's put blocks until the pipe is drained, so joining first could deadlock.
    while not workers.join(timeout=_POLL_SECONDS):
        if output is None and not queue.empty():
            output = queue.get()
    if output is None and not queue.empty():
        output = queue.get()
    if output is None:
        return None
    output = pickle.loads(output)
    trainer._take_rank_zero_output(output)
    return output["result"]


def _spawned_rank(local_rank: int, job: bytes, queue: Any, num_devices: int, num_nodes: int, node_rank: int,
                  address: str, port: int) -> None:
    trainer, run = pickle.loads(job)
    rank = node_rank * num_devices + local_rank
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(num_devices * num_nodes),
                      LOCAL_WORLD_SIZE=str(num_devices), NODE_RANK=str(node_rank), MASTER_ADDR=address,
                      MASTER_PORT=str(port))
    os.environ[_LAUNCHER_PID_ENV] = str(os.getppid())
    result = run()
    if rank == 0:
        # As bytes: tensors sent as torch shares them would vanish with this process.
        queue.put(pickle.dumps(trainer._rank_zero_output(result)))
