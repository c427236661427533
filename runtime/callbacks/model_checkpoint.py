"""`ModelCheckpoint`: when to save during fit, what to call the file, and which files to keep.

Names, arguments, file names and state follow `lightning.pytorch.callbacks.ModelCheckpoint`,
so a checkpoint directory and the callback state inside each file mean the same on both
sides. Every write goes through `trainer.save_checkpoint`, which is atomic.
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from runtime.callbacks.callback import Callback
from runtime.callbacks.monitor_keys import missing_monitor_message
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_info, rank_zero_warn

_MODES = {"min": torch.lt, "max": torch.gt}


class ModelCheckpoint(Callback):
    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_EQUALS_CHAR = "="
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | None = None,
        save_top_k: int = 1,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
    ) -> None:
        if save_last not in (None, True, False):
            raise MisconfigurationException(
                f"ModelCheckpoint(save_last={save_last!r}) is not supported; use True or False."
            )
        if mode not in _MODES:
            raise MisconfigurationException(f"ModelCheckpoint(mode={mode!r}): `mode` can be 'min' or 'max'.")
        self.dirpath = os.path.realpath(os.path.expanduser(dirpath)) if dirpath is not None else None
        self.filename = filename
        self.monitor = monitor
        self.verbose = verbose
        self.save_last = save_last
        self.save_top_k = save_top_k
        self.save_weights_only = save_weights_only
        self.mode = mode
        self.auto_insert_metric_name = auto_insert_metric_name
        self._save_on_train_epoch_end = save_on_train_epoch_end
        self._enable_version_counter = enable_version_counter
        self._every_n_train_steps, self._every_n_epochs = _triggers(every_n_train_steps, every_n_epochs,
                                                                    train_time_interval)
        self._train_time_interval = train_time_interval
        self._validate_configuration()

        self.best_k_models: dict[str, torch.Tensor] = {}
        self.kth_best_model_path = ""
        self.kth_value = torch.tensor(torch.inf if mode == "min" else -torch.inf)
        self.best_model_score: torch.Tensor | None = None
        self.best_model_path = ""
        self.current_score: torch.Tensor | None = None
        self.last_model_path = ""
        self._last_global_step_saved = 0  # nothing to save before the first optimizer step
        self._last_time_checked: float | None = None
        self._last_checkpoint_saved = ""

    def _validate_configuration(self) -> None:
        if self.save_top_k < -1:
            raise MisconfigurationException(
                f"ModelCheckpoint(save_top_k={self.save_top_k}) must be -1 (keep all), 0 (keep none) or k >= 1."
            )
        for name, value in (("every_n_train_steps", self._every_n_train_steps),
                            ("every_n_epochs", self._every_n_epochs)):
            if value < 0:
                raise MisconfigurationException(f"ModelCheckpoint({name}={value}) must be >= 0.")
        triggers = [self._every_n_train_steps >= 1, self._every_n_epochs >= 1, self._train_time_interval is not None]
        if sum(triggers) > 1:
            raise MisconfigurationException(
                "ModelCheckpoint: every_n_train_steps, every_n_epochs and train_time_interval are mutually "
                "exclusive; set only one of them (use two ModelCheckpoint callbacks for two schedules)."
            )
        if self.monitor is None and self.save_top_k not in (-1, 0, 1):
            raise MisconfigurationException(
                f"ModelCheckpoint(save_top_k={self.save_top_k}, monitor=None) has no quantity to rank the top "
                f"{self.save_top_k} by; pass monitor='<logged metric>', or save_top_k=-1 to keep every checkpoint."
            )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    # --- hooks ------------------------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.dirpath is None:
            # Rank 0's: another rank may number the logger's version directory after rank 0 created it.
            self.dirpath = trainer.strategy.broadcast(default_checkpoint_dir(trainer))
        if stage == "fit" and trainer.is_global_zero and os.path.isdir(self.dirpath) and os.listdir(self.dirpath):
            rank_zero_warn(f"Checkpoint directory {self.dirpath} exists and is not empty.")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._last_time_checked = time.monotonic()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._should_skip_saving(trainer):
            return
        skip_batch = self._every_n_train_steps < 1 or trainer.global_step % self._every_n_train_steps != 0
        skip_time = True
        now = time.monotonic()
        if self._train_time_interval:
            previous = self._last_time_checked
            skip_time = previous is None or now - previous < self._train_time_interval.total_seconds()
        if skip_batch and skip_time:
            return
        if not skip_time:
            self._last_time_checked = now
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._should_skip_saving(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._save_at_epoch_end(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._should_skip_saving(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._save_at_epoch_end(trainer)

    def _save_at_epoch_end(self, trainer: Any) -> None:
        candidates = self._monitor_candidates(trainer)
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "best_model_score": self.best_model_score,
            "best_model_path": self.best_model_path,
            "current_score": self.current_score,
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath", self.dirpath)
        if self.dirpath == saved_dir:
            self.best_model_score = state_dict["best_model_score"]
            self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
            self.kth_value = state_dict.get("kth_value", self.kth_value)
            self.best_k_models = state_dict.get("best_k_models", self.best_k_models)
            self.last_model_path = state_dict.get("last_model_path", self.last_model_path)
        else:
            rank_zero_warn(
                f"The dirpath has changed from {saved_dir!r} to {self.dirpath!r}, therefore `best_model_score`, "
                "`kth_best_model_path`, `kth_value`, `last_model_path` and `best_k_models` won't be reloaded. "
                "Only `best_model_path` will be reloaded."
            )
        self.best_model_path = state_dict["best_model_path"]

    # --- deciding -----------------------------------------------------------------------------------------
    def _should_skip_saving(self, trainer: Any) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.state_fn != "fit"
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        )

    def _should_save_on_train_epoch_end(self, trainer: Any) -> bool:
        """Without validation, or with one validation at each epoch end, save when the epoch ends."""
        if self._save_on_train_epoch_end is not None:
            return self._save_on_train_epoch_end
        if trainer.check_val_every_n_epoch != 1:
            return False
        if sum(trainer.num_val_batches) == 0:
            return True
        return trainer.val_check_interval == 1.0

    def _monitor_candidates(self, trainer: Any) -> dict[str, Any]:
        candidates = dict(trainer.callback_metrics)
        epoch = candidates.get("epoch")
        candidates["epoch"] = epoch.int() if isinstance(epoch, torch.Tensor) else torch.tensor(trainer.current_epoch)
        step = candidates.get("step")
        candidates["step"] = step.int() if isinstance(step, torch.Tensor) else torch.tensor(trainer.global_step)
        return candidates

    def check_monitor_top_k(self, trainer: Any, current: torch.Tensor | None = None) -> bool:
        if current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        return bool(_MODES[self.mode](current, self.best_k_models[self.kth_best_model_path]))

    # --- saving -------------------------------------------------------------------------------------------
    def _save_topk_checkpoint(self, trainer: Any, candidates: dict[str, Any]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is None:
            self._save_none_monitor_checkpoint(trainer, candidates)
            return
        if self.monitor not in candidates:
            message = missing_monitor_message("ModelCheckpoint", self.monitor, trainer)
            if trainer.fit_loop.validation_runs:
                raise MisconfigurationException(message)
            rank_zero_warn(message)
            return
        current = _as_tensor(candidates[self.monitor])
        # Saved on every rank or on none: a save is a collective, and a metric logged without sync_dist differs.
        if trainer.strategy.reduce_boolean_decision(self.check_monitor_top_k(trainer, current)):
            self._update_best_and_save(current, trainer, candidates)
        elif self.verbose:
            rank_zero_info(f"Epoch {int(candidates['epoch'])}, global step {int(candidates['step'])}: "
                           f"{self.monitor!r} was not in top {self.save_top_k}")

    def _save_none_monitor_checkpoint(self, trainer: Any, candidates: dict[str, Any]) -> None:
        filepath = self._versioned_filepath(candidates, trainer, self.best_model_path)
        previous, self.best_model_path = self.best_model_path, filepath
        self._save_checkpoint(trainer, filepath)
        if self.save_top_k == 1 and previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _update_best_and_save(self, current: torch.Tensor, trainer: Any, candidates: dict[str, Any]) -> None:
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        replaced = ""
        if len(self.best_k_models) == k and k > 0:
            replaced = self.kth_best_model_path
            self.best_k_models.pop(replaced)
        if torch.isnan(current):
            current = torch.tensor(torch.inf if self.mode == "min" else -torch.inf, device=current.device)
        filepath = self._versioned_filepath(candidates, trainer, replaced)
        self.current_score = current
        self.best_k_models[filepath] = current
        if len(self.best_k_models) == k:
            worst = max if self.mode == "min" else min
            self.kth_best_model_path = worst(self.best_k_models, key=self.best_k_models.get)
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        best = min if self.mode == "min" else max
        self.best_model_path = best(self.best_k_models, key=self.best_k_models.get)
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose:
            rank_zero_info(
                f"Epoch {int(candidates['epoch'])}, global step {int(candidates['step'])}: {self.monitor!r} reached "
                f"{float(current):0.5f} (best {float(self.best_model_score):0.5f}), saving model to {filepath!r} "
                f"as top {k}"
            )
        self._save_checkpoint(trainer, filepath)
        if replaced and self._should_remove_checkpoint(trainer, replaced, filepath):
            self._remove_checkpoint(trainer, replaced)

    def _save_last_checkpoint(self, trainer: Any, candidates: dict[str, Any]) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while _exists_on_rank_zero(trainer, filepath) and filepath != self.last_model_path:
                filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST, ver=version)
                version += 1
        previous, self.last_model_path = self.last_model_path, filepath
        self._save_checkpoint(trainer, filepath)
        if previous and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        trainer.save_checkpoint(filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)

    def _should_remove_checkpoint(self, trainer: Any, previous: str, current: str) -> bool:
        """Only our own files, never the one this run resumed from."""
        if previous == current:
            return False
        previous_path = Path(previous).absolute()
        if trainer.ckpt_path is not None and previous_path == Path(trainer.ckpt_path).absolute():
            return False
        return Path(self.dirpath).absolute() in previous_path.parents

    def _remove_checkpoint(self, trainer: Any, filepath: str) -> None:
        """Rank 0 wrote the file, so rank 0 removes it."""
        if trainer.is_global_zero and os.path.isfile(filepath):
            os.remove(filepath)

    # --- file names ---------------------------------------------------------------------------------------
    def _versioned_filepath(self, candidates: dict[str, Any], trainer: Any, replaced: str = "") -> str:
        """The formatted name, with -v1, -v2 ... appended while that file already exists."""
        filepath = self.format_checkpoint_name(candidates)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while _exists_on_rank_zero(trainer, filepath) and filepath != replaced:
                filepath = self.format_checkpoint_name(candidates, ver=version)
                version += 1
        return filepath

    def format_checkpoint_name(self, metrics: dict[str, Any], filename: str | None = None,
                               ver: int | None = None) -> str:
        """`"{epoch}-{val_loss:.2f}"` with epoch=2, val_loss=0.1234 -> `<dirpath>/epoch=2-val_loss=0.12.ckpt`."""
        name = format_filename(filename or self.filename, metrics, self.auto_insert_metric_name,
                               self.CHECKPOINT_JOIN_CHAR)
        if ver is not None:
            name = self.CHECKPOINT_JOIN_CHAR.join((name, f"v{ver}"))
        name += self.FILE_EXTENSION
        return os.path.join(self.dirpath, name) if self.dirpath else name

    def find_last_checkpoints(self) -> set[str]:
        """Files in `dirpath` whose name marks them as a last checkpoint (what ckpt_path="last" picks from)."""
        if self.dirpath is None or not os.path.isdir(self.dirpath):
            return set()
        return {
            os.path.join(self.dirpath, name)
            for name in os.listdir(self.dirpath)
            if name.startswith(self.CHECKPOINT_NAME_LAST) and name.endswith(self.FILE_EXTENSION)
        }


def format_filename(template: str | None, metrics: dict[str, Any], auto_insert_metric_name: bool,
                    join_char: str = "-") -> str:
    """Fill `{name}` / `{name:fmt}` fields from `metrics`; a field never logged formats as 0."""
    if not template:
        template = "{epoch}" + join_char + "{step}"
    values = dict(metrics)
    fields = sorted(re.findall(r"(\{.*?)[:\}]", template), key=len, reverse=True)
    for field in fields:
        name = field[1:]
        if auto_insert_metric_name:
            template = template.replace(field, name + "={" + name)
        template = template.replace(field, "{0[" + name + "]")
        values.setdefault(name, torch.tensor(0))
    return template.format(values)


def default_checkpoint_dir(trainer: Any) -> str:
    """Lightning's place: `<save_dir>/<logger name>/version_N/checkpoints`, or `<root>/checkpoints` unlogged."""
    logger = trainer.logger
    if logger is None:
        return os.path.join(trainer.default_root_dir, "checkpoints")
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return os.path.join(save_dir, str(logger.name), version, "checkpoints")


def _triggers(every_n_train_steps: int | None, every_n_epochs: int | None,
              train_time_interval: timedelta | None) -> tuple[int, int]:
    """With no trigger given, save every epoch (Lightning's default)."""
    if every_n_train_steps is None and every_n_epochs is None and train_time_interval is None:
        return 0, 1
    return every_n_train_steps or 0, every_n_epochs or 0


def _exists_on_rank_zero(trainer: Any, path: str) -> bool:
    """Every rank must pick the same file name; rank 0, which writes the files, may be ahead of the others."""
    return trainer.strategy.broadcast(os.path.exists(path))


def _as_tensor(value: Any) -> torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
