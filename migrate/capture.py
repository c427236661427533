"""The child side of `migrate verify`: runs one script unchanged and records its training.

Run as `python -m migrate.capture REQUEST.json` (see `migrate.trajectory.CaptureRequest`).
The recording hangs off `torch.autograd.backward`, which `Tensor.backward` and every
trainer go through, so neither the script nor its trainer needs to cooperate.

After the requested number of backward calls the result is written and the process ends
with `os._exit(0)`. Raising instead would leave the stop to the trainer's exception
handling, which may catch, log, checkpoint or retry.

On failure the child writes no result; it prints the script's traceback to stderr, as
`python script.py` would, and exits non-zero. The parent shows the tail of stderr.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import runpy
import sys
import traceback
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from migrate.trajectory import CaptureRequest, Trajectory


def starting_leaves(roots: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The leaf tensors that require grad, found by walking the autograd graph from roots.

    These are the tensors the loss trains, whichever modules hold them, so the original and
    the converted script compare even when their module structure differs.
    """
    leaves: dict[int, torch.Tensor] = {
        id(root): root for root in roots if root.requires_grad and root.grad_fn is None
    }
    seen: set[Any] = set()
    pending = [root.grad_fn for root in roots if root.grad_fn is not None]
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves[id(variable)] = variable
        pending.extend(next_node for next_node, _ in node.next_functions)
    return list(leaves.values())


def fingerprint(tensor: torch.Tensor) -> str:
    """dtype, shape and a hash of the exact bytes, so equal means bit-identical."""
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    digest = hashlib.sha256(data.tobytes()).hexdigest()
    return f"{tensor.dtype} {tuple(tensor.shape)} {digest}"


def _as_tensors(tensors: torch.Tensor | Iterable[Any]) -> tuple[torch.Tensor, ...]:
    if isinstance(tensors, torch.Tensor):
        return (tensors,)
    return tuple(t for t in tensors if isinstance(t, torch.Tensor))


class _Recorder:
    """Collects the losses; ends the process once it has `steps` of them."""

    def __init__(self, request: CaptureRequest) -> None:
        self.request = request
        self.losses: list[float] = []
        self.weights: tuple[str, ...] = ()
        self.param_count = 0

    def install(self) -> None:
        real_backward = torch.autograd.backward
        recorder = self

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            # Record first: the real backward frees the graph the weights are found through.
            recorder.record(_as_tensors(tensors))
            return real_backward(tensors, *args, **kwargs)

        torch.autograd.backward = backward

    def record(self, roots: tuple[torch.Tensor, ...]) -> None:
        """Records one loss per call; `autograd.backward([a, b])` records a + b."""
        if not self.losses:
            leaves = starting_leaves(roots)
            self.weights = tuple(sorted(fingerprint(leaf) for leaf in leaves))
            self.param_count = sum(leaf.numel() for leaf in leaves)
        self.losses.append(math.fsum(float(root.detach().double().sum()) for root in roots))
        if len(self.losses) == self.request.steps:
            self.write(finished_early=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    def write(self, finished_early: bool) -> None:
        result = Trajectory(
            losses=tuple(self.losses),
            weights=self.weights,
            param_count=self.param_count,
            finished_early=finished_early,
        )
        result.write(Path(self.request.result_path))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _script_traceback(error: BaseException, script: str) -> str:
    """The traceback from the script's own frames on, without runpy's and ours."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename != script:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames or error.__traceback__))


def main() -> None:
    request = CaptureRequest.read(Path(sys.argv[1]))
    recorder = _Recorder(request)
    recorder.install()
    if request.fake_data:
        # Imported only when asked: it imports torchvision, which costs seconds.
        from migrate.fake_datasets import offline_datasets

        datasets = offline_datasets()
    else:
        datasets = nullcontext()
    sys.argv = [request.script, *request.argv]
    sys.path[0] = request.import_dir
    try:
        with datasets:
            _seed_everything(request.seed)
            runpy.run_path(request.script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
    except Exception as error:
        sys.stderr.write(_script_traceback(error, request.script))
        sys.exit(1)
    recorder.write(finished_early=True)


if __name__ == "__main__":
    main()
