"""The fit, evaluation and predict loops, written as plain loops a reader can follow.

Equivalence with a hand-written loop rests on three rules kept here:
- the train loader's iterator is created once per epoch and batches are fetched one at a
  time (no prefetch), so data-side and model-side random draws interleave as in a hand loop;
- `training_step`, `zero_grad`, `backward` and `optimizer.step` run in a numerically
  identical order, with the loss divided by `accumulate_grad_batches` exactly once;
- nothing here draws from any RNG (the sanity pass restores the state it found).
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from runtime.callbacks.callback import Callback, overrides
from runtime.callbacks.early_stopping import EarlyStopping
from runtime.callbacks.model_checkpoint import ModelCheckpoint
from runtime.checkpoint_loops import epoch_marks
from runtime.exceptions import MisconfigurationException
from runtime.metrics import ResultCollection
from runtime.seed import capture_rng_states, restore_rng_states

if TYPE_CHECKING:
    from runtime.trainer import Trainer


@dataclass
class ResumePoint:
    """Where a run restored from a checkpoint picks up (see `FitLoop.state_dict`)."""

    batch_idx: int
    rng_states: dict[str, Any] | None
    epoch_start_rng_states: dict[str, Any] | None
    pending_batch: dict[str, bool] | None


class FitLoop:
    """Epochs of training batches, with validation at the configured points."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.epoch = 0
        self.batch_idx = 0
        self.total_batch_idx = 0
        self.global_step = 0
        self.batches_that_stepped = 0
        self.epoch_start_rng_states: dict[str, Any] | None = None
        self.epoch_start_marks: dict[str, int] = {}
        self.validation_runs = 0
        # "idle" between epochs, "epoch" inside one, "batch_end" while a trained batch's after-work runs
        # (on_train_batch_end, validation when due, counters), "epoch_end" in on_train_epoch_end.
        self.phase = "idle"
        self.pending_batch: dict[str, bool] | None = None
        self.resume: ResumePoint | None = None
        self._train_outputs: list[Any] = []

    # --- loop state, saved in checkpoints --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where a run restored from this moment picks up.

        Saved from `on_train_epoch_end`: the next epoch. Saved after a batch trained (its
        `on_train_batch_end`, or a validation that batch triggered): that batch's remaining work
        (`pending_batch`), then the next batch of the same shuffled order, which the epoch-start
        RNG states reproduce.
        """
        epoch, batch_idx = self.epoch, self.batch_idx
        if self.phase == "epoch_end":
            epoch, batch_idx = epoch + 1, 0
        return {
            "epoch": epoch,
            "batch_idx": batch_idx,
            "total_batch_idx": self.total_batch_idx,
            "global_step": self.global_step,
            "batches_that_stepped": self.batches_that_stepped,
            "epoch_start_rng_states": self.epoch_start_rng_states if batch_idx else None,
            "epoch_start_marks": dict(self.epoch_start_marks),
            "pending_batch": dict(self.pending_batch) if self.pending_batch is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], rng_states: dict[str, Any] | None) -> None:
        """`rng_states`: the generators at save time, restored where the interrupted run was."""
        self.epoch = state["epoch"]
        self.batch_idx = 0
        self.total_batch_idx = state["total_batch_idx"]
        self.global_step = state["global_step"]
        self.batches_that_stepped = state["batches_that_stepped"]
        self.epoch_start_marks = dict(state.get("epoch_start_marks") or {})
        self.resume = ResumePoint(state["batch_idx"], rng_states, state.get("epoch_start_rng_states"),
                                  state.get("pending_batch"))

    # --- stopping ---------------------------------------------------------------------------------
    def max_steps_reached(self) -> bool:
        max_steps = self.trainer.max_steps
        return max_steps != -1 and self.global_step >= max_steps

    @property
    def done(self) -> bool:
        trainer = self.trainer
        if self.max_steps_reached():
            return True
        if trainer.max_epochs != -1 and self.epoch >= trainer.max_epochs:
            return True
        if trainer.should_stop:
            if self._minimums_met():
                return True
            trainer.should_stop = False
        return False

    def _minimums_met(self) -> bool:
        trainer = self.trainer
        return self.epoch >= (trainer.min_epochs or 0) and self.global_step >= (trainer.min_steps or 0)

    # --- running ----------------------------------------------------------------------------------
    def run(self) -> None:
        trainer = self.trainer
        trainer._call_hook("on_train_start")
        while not self.done:
            self.run_epoch()
        trainer._call_hook("on_train_end")

    def run_epoch(self) -> None:
        trainer = self.trainer
        module = trainer.lightning_module
        loader = trainer.train_dataloader
        num_batches = trainer.num_training_batches
        resume, self.resume = self.resume, None
        if resume is not None and not resume.batch_idx and resume.rng_states is not None:
            restore_rng_states(resume.rng_states)
        _set_sampler_epoch(loader, self.epoch)
        module.train()
        self.phase = "epoch"
        trainer._fx = "on_train_epoch_start"
        trainer._results = trainer._train_results
        trainer._call_hook("on_train_epoch_start")

        if resume is not None and resume.batch_idx:
            start_batch = resume.batch_idx
            iterator = self._iterator_after(loader, resume)
        else:
            start_batch = 0
            self.epoch_start_marks = epoch_marks(trainer)
            self.epoch_start_rng_states = capture_rng_states()
            iterator = iter(loader)
        self.batch_idx = start_batch

        if math.isinf(num_batches):
            batches = _with_last_flag(iterator)
        else:
            batches = _counted(iterator, int(num_batches) - start_batch)
        if resume is not None and resume.pending_batch is not None:
            self.pending_batch = dict(resume.pending_batch)
            self.phase = "batch_end"
            if self._finish_batch(start_batch - 1):
                batches = iter(())
        step_batch = self._automatic_step if module.automatic_optimization else self._manual_step
        transfer = trainer._transfer_batch
        results = trainer._train_results
        hooks = trainer._hooks
        batch_start_hooks = hooks.callback_hooks("on_train_batch_start")
        batch_end_hooks = hooks.batch_hooks("on_train_batch_end")
        module_batch_start = hooks.module_hook("on_train_batch_start")
        keep_outputs = trainer._legacy_training_epoch_end
        for batch_idx, (batch, is_last) in enumerate(batches, start=start_batch):
            batch = transfer(batch, 0)
            results.new_batch(batch)
            if batch_start_hooks or module_batch_start is not None:
                trainer._fx = "on_train_batch_start"
                for hook in batch_start_hooks:
                    hook(batch, batch_idx)
                if module_batch_start is not None and module_batch_start(batch, batch_idx) == -1:
                    break
            trainer._fx = "training_step"
            outputs, stepped = step_batch(batch, batch_idx, is_last)
            self.batch_idx = batch_idx + 1
            self.total_batch_idx += 1
            self.pending_batch = {"is_last": is_last, "stepped": stepped, "validated": False}
            self.phase = "batch_end"
            if stepped:
                trainer._step_schedulers("step")
            if is_last:
                trainer._step_schedulers("epoch", plateau=False)
            if batch_end_hooks:
                trainer._fx = "on_train_batch_end"
                for hook in batch_end_hooks:
                    hook(outputs, batch, batch_idx)
            if keep_outputs:
                self._train_outputs.append(outputs)
            if self._finish_batch(batch_idx):
                break
        self._end_epoch()

    def _finish_batch(self, batch_idx: int) -> bool:
        """The rest of a trained batch after `on_train_batch_end`: step logging, validation when due, counters.

        Returns True when training must stop before the next batch.
        """
        trainer = self.trainer
        pending = self.pending_batch
        stepped = pending["stepped"]
        if stepped and (self.batches_that_stepped + 1) % trainer.log_every_n_steps == 0:
            trainer._log_train_step_metrics(self.batches_that_stepped)
        if not pending["validated"] and trainer._should_validate(batch_idx, pending["is_last"]):
            pending["validated"] = True
            self.validation_runs += 1
            trainer._run_validation()
            trainer._results = trainer._train_results
            trainer._step_schedulers("step", plateau=True)
        if stepped:
            self.batches_that_stepped += 1
        self.pending_batch = None
        self.phase = "epoch"
        return trainer.should_stop and self._minimums_met() or self.max_steps_reached()

    def _iterator_after(self, loader: Any, resume: ResumePoint) -> Any:
        """The loader's iterator past the `resume.batch_idx` batches the interrupted run trained.

        The epoch-start RNG states recreate the interrupted epoch's shuffle; the RNG is then set to
        where it was at the save. A checkpoint without them (written by Lightning) gets what
        Lightning does: a fresh iterator, of which only the remaining count runs.
        """
        self.epoch_start_rng_states = resume.epoch_start_rng_states
        if resume.epoch_start_rng_states is None:
            return iter(loader)
        restore_rng_states(resume.epoch_start_rng_states)
        iterator = iter(loader)
        _skip_batches(iterator, resume.batch_idx)
        if resume.rng_states is not None:
            restore_rng_states(resume.rng_states)
        return iterator

    def _end_epoch(self) -> None:
        trainer = self.trainer
        self.phase = "epoch_end"
        trainer._fx = "on_train_epoch_end"
        trainer._results = trainer._train_results
        if trainer._legacy_training_epoch_end:
            outputs, self._train_outputs = self._train_outputs, []
            trainer.lightning_module.training_epoch_end(outputs)
        _call_train_epoch_end(trainer)
        # A stop requested on one rank (in user code) ends the run on all of them, at this epoch's end.
        trainer.should_stop = trainer.strategy.reduce_boolean_decision(trainer.should_stop, all=False)
        trainer._finish_train_epoch_metrics(self.batches_that_stepped - 1)
        trainer._step_schedulers("epoch", plateau=True)
        self.epoch += 1
        self.batch_idx = 0
        self.phase = "idle"

    def _automatic_step(self, batch: Any, batch_idx: int, is_last: bool) -> tuple[Any, bool]:
        """One training batch: forward, zero_grad at the start of an accumulation window, backward, maybe step."""
        trainer = self.trainer
        module = trainer.lightning_module
        accumulate = trainer.accumulate_grad_batches
        should_step = accumulate == 1 or (batch_idx + 1) % accumulate == 0 or is_last
        zero_grad_first = accumulate == 1 or batch_idx % accumulate == 0
        optimizer = trainer._lightning_optimizers[0]
        outputs: list[Any] = [None]

        def closure() -> torch.Tensor | None:
            loss, outputs[0] = trainer._training_step_loss(batch, batch_idx)
            if zero_grad_first:
                trainer._zero_grad(batch_idx, optimizer.optimizer)
            if loss is None:
                return None
            if accumulate > 1:
                loss = loss / accumulate
                outputs[0]["loss"] = loss.detach()
            trainer._run_backward(loss)
            return loss

        if should_step:
            module.optimizer_step(self.epoch, batch_idx, optimizer, closure)
        elif trainer.strategy.no_sync_context is None:
            closure()
        else:
            # DDP: gradients of a window are averaged across ranks once, on the batch that steps.
            with trainer.strategy.no_sync_context():
                closure()
        return outputs[0], should_step

    def _manual_step(self, batch: Any, batch_idx: int, is_last: bool) -> tuple[Any, bool]:
        trainer = self.trainer
        steps_before = self.global_step
        with trainer.precision_plugin.forward_context():
            outputs = trainer._step_owner.training_step(batch, batch_idx)
        if isinstance(outputs, torch.Tensor):
            outputs = {"loss": outputs.detach()}
        return outputs, self.global_step > steps_before



def _call_train_epoch_end(trainer: Trainer) -> None:
    """Callbacks, the module, then checkpointing and early stopping, as Lightning orders them.

    The monitoring callbacks run last so they see what the module logs in its own
    `on_train_epoch_end`.
    """
    module = trainer.lightning_module
    listening = [cb for cb in trainer.callbacks if overrides(cb, Callback, "on_train_epoch_end")]
    monitoring = [cb for cb in listening if isinstance(cb, (ModelCheckpoint, EarlyStopping))]
    for callback in listening:
        if callback not in monitoring:
            callback.on_train_epoch_end(trainer, module)
    module_fn = trainer._hooks.module_hook("on_train_epoch_end")
    if module_fn is not None:
        module_fn()
    for callback in monitoring:
        callback.on_train_epoch_end(trainer, module)


def _set_sampler_epoch(loader: Any, epoch: int) -> None:
    """Distributed samplers reshuffle per epoch only when told the epoch."""
    for holder in (loader, getattr(loader, "batch_sampler", None)):
        sampler = getattr(holder, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)


class EvaluationLoop:
    """Validation and test: `*_step` over each loader under no-grad, then epoch reductions."""

    def __init__(self, trainer: Trainer, stage: str) -> None:
        self.trainer = trainer
        self.stage = stage
        self.results = ResultCollection(stage)
        self._outputs: list[list[Any]] = []

    @property
    def _prefix(self) -> str:
        return "validation" if self.stage == "validate" else "test"

    def run(self, loaders: list[Any], limits: list[float], log_to_loggers: bool) -> list[dict[str, float]]:
        trainer = self.trainer
        module = trainer.lightning_module
        prefix = self._prefix
        step_fn = getattr(module, f"{prefix}_step")
        if len(loaders) > 1:
            _require_dataloader_idx(step_fn, f"{prefix}_step")
        legacy_epoch_end = trainer._legacy_eval_epoch_end(prefix)
        self.results.reset()
        trainer._results = self.results
        self._outputs = [[] for _ in loaders]
        was_training = module.training
        trainer._fx = f"on_{prefix}_model_eval"
        getattr(module, f"on_{prefix}_model_eval")()
        grad_context = torch.inference_mode if trainer.inference_mode else torch.no_grad
        with grad_context():
            trainer._fx = f"on_{prefix}_start"
            trainer._call_hook(f"on_{prefix}_start")
            trainer._fx = f"on_{prefix}_epoch_start"
            trainer._call_hook(f"on_{prefix}_epoch_start")
            multiple = len(loaders) > 1
            for loader_idx, (loader, limit) in enumerate(zip(loaders, limits)):
                self.results.dataloader_idx = loader_idx if multiple else None
                self._run_loader(loader, loader_idx, limit, step_fn, multiple, legacy_epoch_end is not None)
            self.results.dataloader_idx = None
            trainer._fx = f"on_{prefix}_epoch_end"
            if legacy_epoch_end is not None:
                legacy_epoch_end(self._outputs[0] if not multiple else self._outputs)
            trainer._call_hook(f"on_{prefix}_epoch_end")
            metrics = trainer._finish_eval_metrics(self.results, log_to_loggers)
            trainer._fx = f"on_{prefix}_end"
            trainer._call_hook(f"on_{prefix}_end")
        if was_training:
            trainer._fx = f"on_{prefix}_model_train"
            getattr(module, f"on_{prefix}_model_train")()
        self._outputs = []
        trainer._results = None
        return metrics

    def _run_loader(self, loader: Any, loader_idx: int, limit: float, step_fn: Any, multiple: bool,
                    keep_outputs: bool) -> None:
        trainer = self.trainer
        prefix = self._prefix
        start_hooks = trainer._hooks.batch_hooks(f"on_{prefix}_batch_start")
        end_hooks = trainer._hooks.batch_hooks(f"on_{prefix}_batch_end")
        fx_step = f"{prefix}_step"
        forward_context = trainer.precision_plugin.forward_context
        for batch_idx, batch in enumerate(itertools.islice(loader, None if math.isinf(limit) else int(limit))):
            batch = trainer._transfer_batch(batch, loader_idx)
            self.results.new_batch(batch)
            extra = (loader_idx,) if multiple else ()
            if start_hooks:
                trainer._fx = f"on_{prefix}_batch_start"
                for hook in start_hooks:
                    hook(batch, batch_idx, *extra)
            trainer._fx = fx_step
            with forward_context():
                output = step_fn(batch, batch_idx, *extra)
            if keep_outputs:
                self._outputs[loader_idx].append(output)
            if end_hooks:
                trainer._fx = f"on_{prefix}_batch_end"
                for hook in end_hooks:
                    hook(output, batch, batch_idx, *extra)


class PredictLoop:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def run(self, loaders: list[Any], limits: list[float], return_predictions: bool) -> list[Any] | None:
        trainer = self.trainer
        module = trainer.lightning_module
        trainer._results = None
        module.on_predict_model_eval()
        all_predictions: list[list[Any]] = []
        grad_context = torch.inference_mode if trainer.inference_mode else torch.no_grad
        start_hooks = trainer._hooks.batch_hooks("on_predict_batch_start")
        end_hooks = trainer._hooks.batch_hooks("on_predict_batch_end")
        multiple = len(loaders) > 1
        with grad_context():
            trainer._fx = "on_predict_start"
            trainer._call_hook("on_predict_start")
            trainer._call_hook("on_predict_epoch_start")
            for loader_idx, (loader, limit) in enumerate(zip(loaders, limits)):
                predictions: list[Any] = []
                for batch_idx, batch in enumerate(itertools.islice(loader, None if math.isinf(limit) else int(limit))):
                    batch = trainer._transfer_batch(batch, loader_idx)
                    extra = (loader_idx,) if multiple else ()
                    for hook in start_hooks:
                        hook(batch, batch_idx, *extra)
                    trainer._fx = "predict_step"
                    with trainer.precision_plugin.forward_context():
                        prediction = module.predict_step(batch, batch_idx, *extra)
                    for hook in end_hooks:
                        hook(prediction, batch, batch_idx, *extra)
                    if return_predictions:
                        predictions.append(prediction)
                all_predictions.append(predictions)
            trainer._call_hook("on_predict_epoch_end")
            trainer._call_hook("on_predict_end")
        if not return_predictions:
            return None
        return all_predictions[0] if len(all_predictions) == 1 else all_predictions


def _require_dataloader_idx(step_fn: Any, name: str) -> None:
    parameters = inspect.signature(step_fn).parameters
    takes_it = "dataloader_idx" in parameters or any(
        p.kind in (p.VAR_POSITIONAL,) for p in parameters.values()
    ) or len(parameters) >= 3
    if not takes_it:
        raise MisconfigurationException(
            f"Several dataloaders were given, so {name} is called with a third argument; define it as "
            f"`def {name}(self, batch, batch_idx, dataloader_idx=0)`."
        )


def run_sanity_check(trainer: Trainer, loop: EvaluationLoop, loaders: list[Any], steps: int) -> None:
    """A few validation batches before training, to fail fast; leaves every RNG as it found it."""
    states = capture_rng_states()
    trainer.sanity_checking = True
    try:
        trainer._call_hook("on_sanity_check_start")
        limits = [n if steps == -1 else min(n, float(steps)) for n in trainer.num_val_batches]
        loop.run(loaders, limits, log_to_loggers=False)
        trainer._call_hook("on_sanity_check_end")
    finally:
        trainer.sanity_checking = False
        trainer._forget_stage_metrics(loop.results)
        restore_rng_states(states)


def _counted(iterator: Any, count: int) -> Any:
    """(batch, is_last) for a loader of known length, fetching one batch at a time."""
    for index in range(count):
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield batch, index == count - 1


def _with_last_flag(iterator: Any) -> Any:
    """(batch, is_last) for a loader without a length: needs one batch of look-ahead."""
    try:
        current = next(iterator)
    except StopIteration:
        return
    for upcoming in iterator:
        yield current, False
        current = upcoming
    yield current, True


def _skip_batches(iterator: Any, count: int) -> None:
    for _ in range(count):
        try:
            next(iterator)
        except StopIteration:
            raise MisconfigurationException(
                f"Cannot resume mid-epoch: the train loader now has fewer than {count} batches."
            ) from None
