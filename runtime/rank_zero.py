"""Rank-zero helpers: in multi-process training one process writes logs and warns."""

from __future__ import annotations

import logging
import os
import warnings
from functools import wraps
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_log = logging.getLogger(__name__)


def _rank_from_environment() -> int:
    """Read the process rank the launcher exported, before any process group exists.

    LOCAL_RANK comes before SLURM_PROCID because SLURM sets the latter even when it is
    not the one launching the training processes (same order as Lightning).
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None:
            return int(value)
    return 0


def rank_zero_only(
    fn: Callable[..., T], default: T | None = None
) -> Callable[..., T | None]:
    """Run ``fn`` on rank 0 only; other ranks get ``default``.

    The rank is read at call time from ``rank_zero_only.rank``, so a strategy that
    learns the real global rank later can set it and every decorated function follows.
    """

    @wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> T | None:
        if rank_zero_only.rank == 0:
            return fn(*args, **kwargs)
        return default

    return wrapped


rank_zero_only.rank = _rank_from_environment()  # type: ignore[attr-defined]


@rank_zero_only
def rank_zero_warn(
    message: str | Warning, category: type[Warning] = UserWarning, stacklevel: int = 4
) -> None:
    """Warn once per job instead of once per process.

    ``stacklevel`` counts frames as Lightning's helper does (4 = the line that called
    ``rank_zero_warn``); this function has one frame fewer in between, hence ``- 1``.
    """
    warnings.warn(message, category, stacklevel=stacklevel - 1)


@rank_zero_only
def rank_zero_info(message: str) -> None:
    """Log at INFO level from rank 0, so N processes do not print N copies."""
    _log.info(message)
