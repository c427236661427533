"""The checkpoint's `loops` key in Lightning 2.x's layout, and reading one back.

`lightning.pytorch` resumes from progress counters: `current_epoch` comes from
`fit_loop.epoch_progress`, `global_step` from the optimizer step progress, the position in
the epoch from `epoch_loop.batch_progress`. Each counter has four stages that advance in
order (ready, started, processed, completed), so a file saved inside `on_train_batch_end`
differs from one saved inside `on_train_epoch_end`. This module writes the values Lightning
itself would hold at the moment of the save, so `Trainer.fit(ckpt_path=...)` of
`lightning.pytorch` accepts a runtime checkpoint.

The runtime resumes from its own key (`runtime_fit_loop`), which also carries the RNG states
an exact mid-epoch resume needs; `fit_state_from_lightning` turns a Lightning-written file's
counters into that form.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.trainer import Trainer


def epoch_marks(trainer: Trainer) -> dict[str, int]:
    """Counts at the start of an epoch; Lightning's per-epoch ("current") counters are the difference."""
    loop = trainer.fit_loop
    return {
        "global_step": loop.global_step,
        "scheduler_steps": _scheduler_steps(trainer),
        "validation_runs": loop.validation_runs,
    }


def lightning_loops_state(trainer: Trainer) -> dict[str, Any]:
    return {
        "fit_loop": _fit_loop_state(trainer),
        "validate_loop": {"state_dict": {}, "batch_progress": _batch_progress(0, 0, 0, False)},
        "test_loop": {"state_dict": {}, "batch_progress": _batch_progress(0, 0, 0, False)},
        "predict_loop": {"state_dict": {}, "batch_progress": {"total": _processed(0), "current": _processed(0)}},
    }


def _fit_loop_state(trainer: Trainer) -> dict[str, Any]:
    loop = trainer.fit_loop
    marks = loop.epoch_start_marks
    pending = loop.pending_batch
    # Lightning counts a batch "completed" after on_train_batch_end, before validation.
    incomplete = 1 if pending is not None and not pending["validated"] else 0
    if pending is not None:
        is_last_batch = pending["is_last"]
    else:
        is_last_batch = loop.batch_idx > 0 and loop.batch_idx >= trainer.num_training_batches

    steps = loop.global_step
    steps_in_epoch = max(0, steps - marks.get("global_step", 0))
    automatic = trainer.lightning_module is None or trainer.lightning_module.automatic_optimization
    scheduler_steps = _scheduler_steps(trainer)
    val_batches = int(sum(n for n in trainer.num_val_batches if not math.isinf(n)))
    val_runs_in_epoch = max(0, loop.validation_runs - marks.get("validation_runs", 0))
    val_current = val_batches if loop.validation_runs else 0

    return {
        "state_dict": {},
        "epoch_loop.state_dict": {"_batches_that_stepped": loop.batches_that_stepped},
        "epoch_loop.batch_progress": _batch_progress(loop.total_batch_idx, loop.batch_idx, incomplete,
                                                     is_last_batch),
        "epoch_loop.scheduler_progress": {
            "total": _ready_completed(scheduler_steps),
            "current": _ready_completed(max(0, scheduler_steps - marks.get("scheduler_steps", 0))),
        },
        "epoch_loop.manual_optimization.state_dict": {},
        "epoch_loop.manual_optimization.optim_step_progress": {
            "total": _ready_completed(0 if automatic else steps),
            "current": _ready_completed(0 if automatic else steps_in_epoch),
        },
        "epoch_loop.automatic_optimization.state_dict": {},
        "epoch_loop.automatic_optimization.optim_progress": {
            "optimizer": {
                "step": {
                    "total": _ready_completed(steps if automatic else 0),
                    "current": _ready_completed(steps_in_epoch if automatic else 0),
                },
                # One zero_grad per optimizer step (exact without gradient accumulation).
                "zero_grad": {
                    "total": _started(steps if automatic else 0),
                    "current": _started(steps_in_epoch if automatic else 0),
                },
            },
        },
        "epoch_loop.val_loop.state_dict": {},
        "epoch_loop.val_loop.batch_progress": {
            "total": _processed(val_runs_in_epoch * val_batches),
            "current": _processed(val_current),
            "is_last_batch": val_current > 0,
        },
        "epoch_progress": _epoch_progress(loop.epoch, loop.phase),
    }


def _epoch_progress(epoch: int, phase: str) -> dict[str, Any]:
    """`epoch` is the runtime's 0-based current epoch; the stages show how far into it the save happened."""
    if phase == "idle":
        counts = {"ready": epoch, "started": epoch, "processed": epoch, "completed": epoch}
    elif phase == "epoch_end":
        counts = {"ready": epoch + 1, "started": epoch + 1, "processed": epoch + 1, "completed": epoch}
    else:
        counts = {"ready": epoch + 1, "started": epoch + 1, "processed": epoch, "completed": epoch}
    return {"total": dict(counts), "current": dict(counts)}


def _batch_progress(total: int, current: int, incomplete: int, is_last_batch: bool) -> dict[str, Any]:
    def counts(done: int) -> dict[str, int]:
        return {"ready": done, "started": done, "processed": done, "completed": done - incomplete}

    return {"total": counts(total), "current": counts(current), "is_last_batch": is_last_batch}


def _ready_completed(count: int) -> dict[str, int]:
    return {"ready": count, "completed": count}


def _started(count: int) -> dict[str, int]:
    return {"ready": count, "started": count, "completed": count}


def _processed(count: int) -> dict[str, int]:
    return {"ready": count, "started": count, "processed": count, "completed": count}


def _scheduler_steps(trainer: Trainer) -> int:
    """Scheduler steps the trainer made: each scheduler counts its own steps in `last_epoch`."""
    module = trainer.lightning_module
    if module is None or not module.automatic_optimization:
        return 0
    return sum(max(0, int(getattr(config.scheduler, "last_epoch", 0))) for config in trainer.lr_scheduler_configs)


def fit_state_from_lightning(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The runtime's fit-loop state for a checkpoint written by `lightning.pytorch`.

    Such a file has no RNG states, so a mid-epoch one resumes as Lightning resumes it: the
    remaining number of batches from a fresh loader iterator.
    """
    global_step = checkpoint.get("global_step", 0)
    fit = checkpoint.get("loops", {}).get("fit_loop")
    if not fit or "epoch_progress" not in fit:
        return _state(epoch=checkpoint.get("epoch", -1) + 1, batch_idx=0, total_batch_idx=0,
                      global_step=global_step, batches_that_stepped=global_step)
    epoch = fit["epoch_progress"]["current"]
    batches = fit["epoch_loop.batch_progress"]["current"]
    stepped = fit.get("epoch_loop.state_dict", {}).get("_batches_that_stepped", global_step)
    mid_epoch = epoch["ready"] > epoch["processed"]
    if mid_epoch and batches["completed"] < batches["processed"]:
        stepped += 1  # saved in on_train_batch_end, before Lightning counted that batch's step
    return _state(
        epoch=epoch["processed"],
        batch_idx=batches["processed"] if mid_epoch else 0,
        total_batch_idx=fit["epoch_loop.batch_progress"]["total"]["processed"],
        global_step=global_step,
        batches_that_stepped=stepped,
    )


def _state(epoch: int, batch_idx: int, total_batch_idx: int, global_step: int,
           batches_that_stepped: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "batch_idx": batch_idx,
        "total_batch_idx": total_batch_idx,
        "global_step": global_step,
        "batches_that_stepped": batches_that_stepped,
        "epoch_start_rng_states": None,
        "epoch_start_marks": {},
        "pending_batch": None,
    }
