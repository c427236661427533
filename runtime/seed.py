"""Global seeding and RNG-state capture.

The runtime promises to draw no random numbers of its own, so anything that must run
without disturbing the user's random streams (the sanity validation pass, checkpoint
resume) brackets itself with `capture_rng_states` / `restore_rng_states`.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import torch

from runtime.rank_zero import rank_zero_warn

_MAX_SEED = 2**32 - 1


def seed_everything(seed: int | None = None, workers: bool = False) -> int:
    """Seed python, numpy (when importable) and torch (all devices), as Lightning does."""
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is None:
            seed = 0
            rank_zero_warn(f"No seed found, seed set to {seed}")
        else:
            seed = int(env_seed)
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed_everything: {seed} is outside the valid range 0..{_MAX_SEED}; pass a seed in range.")
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    os.environ["PL_SEED_WORKERS"] = str(int(workers))
    random.seed(seed)
    numpy = _numpy_if_loaded(load=True)
    if numpy is not None:
        numpy.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def worker_init_function(worker_id: int, rank: int | None = None) -> None:
    """Give each DataLoader worker distinct, reproducible seeds (used when `workers=True`)."""
    global_rank = rank if rank is not None else int(os.environ.get("RANK", 0))
    process_seed = torch.initial_seed()
    base_seed = process_seed - worker_id
    seed_sequence = [base_seed & 0xFFFFFFFF, worker_id, global_rank]
    torch_seed = hash(tuple(seed_sequence)) & 0xFFFFFFFF
    torch.manual_seed(torch_seed)
    random.seed(torch_seed)
    numpy = _numpy_if_loaded(load=True)
    if numpy is not None:
        numpy.random.seed(torch_seed)


def capture_rng_states() -> dict[str, Any]:
    """Snapshot every generator the user's code may draw from, as checkpoint-safe plain types."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy = _numpy_if_loaded()
    if numpy is not None:
        kind, keys, pos, has_gauss, cached = numpy.random.get_state()
        states["numpy"] = (kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    python_state = states["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = states.get("numpy")
    numpy = _numpy_if_loaded(load=numpy_state is not None)
    if numpy_state is not None and numpy is not None:
        kind, keys, pos, has_gauss, cached = numpy_state
        numpy.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _numpy_if_loaded(load: bool = False) -> Any:
    """numpy's global RNG matters only if numpy is in use; importing it otherwise costs start-up time."""
    if "numpy" in sys.modules:
        return sys.modules["numpy"]
    if not load:
        return None
    try:
        import numpy
    except ImportError:
        return None
    return numpy
