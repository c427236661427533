"""Checkpoint files: Lightning 2.x layout, atomic writes, and loads that never run code.

Everything in a checkpoint is a tensor or a plain Python value, so `torch.load(path,
weights_only=True)` opens it; the runtime itself never loads with `weights_only=False`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runtime.exceptions import MisconfigurationException
from runtime.seed import capture_rng_states, restore_rng_states

if TYPE_CHECKING:
    from runtime.trainer import Trainer

CHECKPOINT_VERSION = "2.6.6"
_VERSION_KEY = "pytorch-lightning_version"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write to a temp file beside `path`, fsync, rename over it, fsync the dir: a crash leaves the old file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = None) -> dict[str, Any]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise MisconfigurationException(
            f"Could not load checkpoint {path} safely (weights_only=True): {err}. Checkpoints must hold only "
            "tensors and plain Python values."
        ) from err


def dump_checkpoint(trainer: Trainer, weights_only: bool = False) -> dict[str, Any]:
    module = trainer.lightning_module
    loop = trainer.fit_loop
    checkpoint: dict[str, Any] = {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        _VERSION_KEY: CHECKPOINT_VERSION,
        "state_dict": module.state_dict(),
        "loops": {"fit_loop": loop.state_dict()},
    }
    if not weights_only:
        checkpoint["callbacks"] = _callback_states(trainer, checkpoint)
        checkpoint["optimizer_states"] = [opt.state_dict() for opt in trainer.optimizers]
        checkpoint["lr_schedulers"] = [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs]
        precision_state = trainer.precision_plugin.state_dict()
        if precision_state:
            checkpoint["MixedPrecision"] = precision_state
        checkpoint["rng_states"] = capture_rng_states()
    if module.hparams:
        checkpoint["hparams_name"] = getattr(module, "_hparams_name", "kwargs")
        checkpoint["hyper_parameters"] = plain_hparams(module.hparams)
    datamodule = trainer.datamodule
    if datamodule is not None:
        if datamodule.hparams:
            checkpoint["datamodule_hparams_name"] = getattr(datamodule, "_hparams_name", "kwargs")
            checkpoint["datamodule_hyper_parameters"] = plain_hparams(datamodule.hparams)
        state = datamodule.state_dict()
        if state:
            checkpoint[type(datamodule).__qualname__] = state
    module.on_save_checkpoint(checkpoint)
    if datamodule is not None:
        datamodule.on_save_checkpoint(checkpoint)
    return checkpoint


def _callback_states(trainer: Trainer, checkpoint: dict[str, Any]) -> dict[str, Any]:
    states = {}
    for callback in trainer.callbacks:
        state = callback.state_dict()
        if state:
            states[callback.state_key] = state
        callback.on_save_checkpoint(trainer, trainer.lightning_module, checkpoint)
    return states


def save_trainer_checkpoint(trainer: Trainer, filepath: str | os.PathLike, weights_only: bool = False) -> None:
    checkpoint = dump_checkpoint(trainer, weights_only)
    trainer.strategy.barrier("save_checkpoint")
    if trainer.is_global_zero:
        atomic_save(checkpoint, filepath)


def plain_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters reduced to types `weights_only` loading accepts; others become their repr string."""
    return {str(k): _plain(v) for k, v in hparams.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value) if isinstance(value, list) else tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def restore_trainer_state(trainer: Trainer, stage: str, ckpt_path: str) -> str:
    """Restore weights (every stage) and, for fit, optimizers, schedulers, loops, callbacks and RNG."""
    path = _resolve_ckpt_path(trainer, ckpt_path)
    checkpoint = load_checkpoint(path, map_location=trainer.root_device)
    module = trainer.lightning_module
    module.on_load_checkpoint(checkpoint)
    if trainer.datamodule is not None:
        trainer.datamodule.on_load_checkpoint(checkpoint)
        state = checkpoint.get(type(trainer.datamodule).__qualname__)
        if state:
            trainer.datamodule.load_state_dict(state)
    module.load_state_dict(checkpoint["state_dict"])
    if stage != "fit":
        return path
    for callback in trainer.callbacks:
        callback.on_load_checkpoint(trainer, module, checkpoint)
        state = checkpoint.get("callbacks", {}).get(callback.state_key)
        if state:
            callback.load_state_dict(state)
    for optimizer, state in zip(trainer.optimizers, checkpoint.get("optimizer_states", [])):
        optimizer.load_state_dict(state)
    for config, state in zip(trainer.lr_scheduler_configs, checkpoint.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
    if "MixedPrecision" in checkpoint:
        trainer.precision_plugin.load_state_dict(checkpoint["MixedPrecision"])
    rng_states = checkpoint.get("rng_states")
    loop_state = checkpoint.get("loops", {}).get("fit_loop")
    if loop_state is not None and "batches_that_stepped" in loop_state:
        trainer.fit_loop.load_state_dict(loop_state, rng_states)
        if not loop_state["batch_idx"] and rng_states is not None:
            restore_rng_states(rng_states)
    else:
        _restore_lightning_loop_counters(trainer, checkpoint)
    return path


def _restore_lightning_loop_counters(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """A checkpoint written by lightning.pytorch: resume at the next epoch from its counters."""
    loop = trainer.fit_loop
    loop.global_step = checkpoint.get("global_step", 0)
    loop.batches_that_stepped = loop.global_step
    loop.epoch = checkpoint.get("epoch", 0) + 1


def _resolve_ckpt_path(trainer: Trainer, ckpt_path: str) -> str:
    if ckpt_path in ("best", "last"):
        callback = trainer.checkpoint_callback
        attribute = "best_model_path" if ckpt_path == "best" else "last_model_path"
        path = getattr(callback, attribute, "") if callback is not None else ""
        if not path:
            raise MisconfigurationException(
                f'ckpt_path="{ckpt_path}" but no {ckpt_path} checkpoint was saved by a ModelCheckpoint callback in '
                "this trainer; pass a file path instead."
            )
        return path
    return os.fspath(ckpt_path)


def load_module_from_checkpoint(cls: type, checkpoint_path: Any, map_location: Any, strict: bool | None,
                                overrides: dict[str, Any]) -> Any:
    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    hparams.update(overrides)
    module = cls(**hparams)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
    if map_location is not None:
        module.to(map_location if not callable(map_location) else "cpu")
    module.eval()
    return module


def load_datamodule_from_checkpoint(cls: type, checkpoint_path: Any, map_location: Any,
                                    overrides: dict[str, Any]) -> Any:
    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location)
    hparams = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    hparams.update(overrides)
    datamodule = cls(**hparams)
    state = checkpoint.get(cls.__qualname__)
    if state:
        datamodule.load_state_dict(state)
    return datamodule
