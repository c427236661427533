"""Checkpoint files: Lightning 2.x layout, atomic writes, and loads that never run code.

Everything in a checkpoint is a tensor or a plain Python value, so `torch.load(path,
weights_only=True)` opens it; the runtime itself never loads with `weights_only=False`.

Besides Lightning's keys a runtime checkpoint holds two of its own, which Lightning ignores:
`runtime_fit_loop` (where in the epoch to pick up, with the epoch's starting RNG states) and
`rng_states` (python, numpy, torch and CUDA generators at the save). Together they make a
resumed run bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import inspect
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runtime.checkpoint_loops import fit_state_from_lightning, lightning_loops_state
from runtime.exceptions import MisconfigurationException
from runtime.rank_zero import rank_zero_warn
from runtime.seed import capture_rng_states

if TYPE_CHECKING:
    from runtime.trainer import Trainer

CHECKPOINT_VERSION = "2.6.6"
VERSION_KEY = "pytorch-lightning_version"
RUNTIME_LOOP_KEY = "runtime_fit_loop"
RNG_KEY = "rng_states"
_PLAIN_SCALARS = (bool, int, float, complex, str, bytes, torch.dtype, torch.device)
_warned_hparams: set[tuple[str, str]] = set()


# --- files -------------------------------------------------------------------------------------------
def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write a temp file beside `path`, fsync, rename over `path`, fsync the directory.

    A crash at any point leaves either the old file or the new one, never a torn one. The
    temp file is hidden (leading dot) and is created with the usual permissions (0666 less
    the umask), which the rename carries over.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; directories cannot be opened for fsync on Windows."""
    if os.name != "posix":
        return
    dir_fd = os.open(directory, os.O_RDONLY)
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


# --- saving -------------------------------------------------------------------------------------------
def save_trainer_checkpoint(trainer: Trainer, filepath: str | os.PathLike, weights_only: bool = False) -> None:
    """Every rank builds the dict (its hooks run everywhere); rank 0 writes it; no rank goes on before it exists.

    The RNG states saved are rank 0's, and every rank restores them. Ranks seeded alike that make
    the same draws (dropout masks of equal shape, say) hold the same states, so a resume with the
    same world size is exact. A rank whose draws differed from rank 0's (data-dependent sampling)
    continues from rank 0's generators, so its random stream after the resume is not the one an
    uninterrupted run would have drawn.
    """
    checkpoint = dump_checkpoint(trainer, weights_only)
    if trainer.is_global_zero:
        atomic_save(checkpoint, filepath)
    trainer.strategy.barrier("save_checkpoint")


def dump_checkpoint(trainer: Trainer, weights_only: bool = False) -> dict[str, Any]:
    """The checkpoint dict, in the order Lightning builds it (hooks see the finished dict)."""
    module = trainer.lightning_module
    checkpoint: dict[str, Any] = {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        VERSION_KEY: CHECKPOINT_VERSION,
        "state_dict": module.state_dict(),
        "loops": lightning_loops_state(trainer),
        RUNTIME_LOOP_KEY: trainer.fit_loop.state_dict(),
    }
    if not weights_only:
        checkpoint["callbacks"] = _callback_states(trainer)
        checkpoint["optimizer_states"] = [optimizer.state_dict() for optimizer in trainer.optimizers]
        checkpoint["lr_schedulers"] = [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs]
        precision_state = trainer.precision_plugin.state_dict()
        if precision_state:
            checkpoint[type(trainer.precision_plugin).__qualname__] = precision_state
        checkpoint[RNG_KEY] = capture_rng_states()
    if module.hparams:
        checkpoint["hparams_name"] = getattr(module, "_hparams_name", "kwargs")
        checkpoint["hyper_parameters"] = plain_hparams(module.hparams, type(module).__name__)
    datamodule = trainer.datamodule
    if datamodule is not None:
        if datamodule.hparams:
            checkpoint["datamodule_hparams_name"] = getattr(datamodule, "_hparams_name", "kwargs")
            checkpoint["datamodule_hyper_parameters"] = plain_hparams(datamodule.hparams, type(datamodule).__name__)
        state = datamodule.state_dict()
        if state:
            checkpoint[type(datamodule).__qualname__] = state
    if not weights_only:
        for callback in trainer.callbacks:
            callback.on_save_checkpoint(trainer, module, checkpoint)
    module.on_save_checkpoint(checkpoint)
    if datamodule is not None:
        datamodule.on_save_checkpoint(checkpoint)
    return checkpoint


def _callback_states(trainer: Trainer) -> dict[str, Any]:
    states = {}
    for callback in trainer.callbacks:
        state = callback.state_dict()
        if state:
            states[callback.state_key] = state
    return states


def plain_hparams(hparams: dict[str, Any], owner: str) -> dict[str, Any]:
    """Hyperparameters that `weights_only` loading accepts; the rest are left out, with a warning.

    Paths become strings. Anything else that is not a plain value (a class, a module, a
    function) cannot be stored without pickling code, so it must be passed again on load.
    """
    plain = {}
    for key, value in hparams.items():
        try:
            plain[str(key)] = _plain(value)
        except TypeError:
            if (owner, str(key)) not in _warned_hparams:
                _warned_hparams.add((owner, str(key)))
                rank_zero_warn(
                    f"Hyperparameter {key!r} of {owner} ({type(value).__name__}) is not a plain value, so checkpoints "
                    f"leave it out (they load with weights_only=True). Pass it again when loading: "
                    f"{owner}.load_from_checkpoint(path, {key}=...), or save_hyperparameters(ignore=[{str(key)!r}])."
                )
    return plain


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple, set)):
        items = [_plain(item) for item in value]
        return items if isinstance(value, list) else set(items) if isinstance(value, set) else tuple(items)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(type(value).__name__)


# --- restoring ----------------------------------------------------------------------------------------
def restore_trainer_state(trainer: Trainer, stage: str, ckpt_path: str | os.PathLike) -> str | None:
    """Weights for every stage; for fit also callbacks, optimizers, schedulers, scaler, loop position, RNG.

    Returns the file used, or None when `ckpt_path="last"` found no file (then nothing is restored).
    """
    path = resolve_ckpt_path(trainer, stage, ckpt_path)
    if path is None:
        return None
    # Loaded on the CPU: the RNG states must stay there, and load_state_dict copies weights to their device.
    checkpoint = load_checkpoint(path, map_location="cpu")
    if stage == "fit":
        _check_resumable(trainer, checkpoint, path)
    module = trainer.lightning_module
    module.on_load_checkpoint(checkpoint)
    datamodule = trainer.datamodule
    if datamodule is not None:
        datamodule.on_load_checkpoint(checkpoint)
        state = checkpoint.get(type(datamodule).__qualname__)
        if state:
            datamodule.load_state_dict(state)
    module.load_state_dict(checkpoint["state_dict"])
    if stage != "fit":
        return path
    _restore_callbacks(trainer, checkpoint)
    for optimizer, state in zip(trainer.optimizers, checkpoint["optimizer_states"]):
        optimizer.load_state_dict(state)
    for config, state in zip(trainer.lr_scheduler_configs, checkpoint.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
    precision_key = type(trainer.precision_plugin).__qualname__
    if precision_key in checkpoint:
        trainer.precision_plugin.load_state_dict(checkpoint[precision_key])
    loop_state = checkpoint.get(RUNTIME_LOOP_KEY) or fit_state_from_lightning(checkpoint)
    if trainer.max_epochs not in (None, -1) and loop_state["epoch"] > trainer.max_epochs:
        raise MisconfigurationException(
            f"You restored a checkpoint with current_epoch={loop_state['epoch']}, but you have set "
            f"Trainer(max_epochs={trainer.max_epochs}); raise max_epochs to continue training."
        )
    trainer.fit_loop.load_state_dict(loop_state, checkpoint.get(RNG_KEY))
    return path


def _check_resumable(trainer: Trainer, checkpoint: dict[str, Any], path: str) -> None:
    if "optimizer_states" not in checkpoint:
        raise MisconfigurationException(
            f"{path} holds weights only (written with save_weights_only=True or save_checkpoint(weights_only=True)), "
            "so fit cannot resume from it. Load it with YourModule.load_from_checkpoint(path) and fit without "
            "ckpt_path, or resume from a full checkpoint."
        )
    saved, configured = len(checkpoint["optimizer_states"]), len(trainer.optimizers)
    if saved != configured:
        raise MisconfigurationException(
            f"{path} holds {saved} optimizer state(s) but configure_optimizers returned {configured}; resume with "
            "the configure_optimizers that wrote the checkpoint."
        )


def _restore_callbacks(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    states = checkpoint.get("callbacks") or {}
    missing = sorted(set(states) - {callback.state_key for callback in trainer.callbacks})
    if missing:
        rank_zero_warn(
            "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided during "
            f"`Trainer` instantiation. Please add the following callbacks: {missing}."
        )
    module = trainer.lightning_module
    for callback in trainer.callbacks:
        callback.on_load_checkpoint(trainer, module, checkpoint)
    for callback in trainer.callbacks:
        state = states.get(callback.state_key)
        if state:
            callback.load_state_dict(state)


def resolve_ckpt_path(trainer: Trainer, stage: str, ckpt_path: str | os.PathLike) -> str | None:
    """A file path for `ckpt_path`: itself, or what "best" / "last" point to in this trainer's ModelCheckpoints."""
    if ckpt_path == "best":
        callback = trainer.checkpoint_callback
        if callback is None:
            raise MisconfigurationException(
                f'trainer.{stage}(ckpt_path="best") needs a ModelCheckpoint callback, and this trainer has none '
                "(enable_checkpointing=False?); pass a file path instead."
            )
        if not callback.best_model_path:
            raise MisconfigurationException(
                f'trainer.{stage}(ckpt_path="best") found no best checkpoint: this trainer\'s ModelCheckpoint has not '
                "saved one (run fit first, or pass a file path)."
            )
        return callback.best_model_path
    if ckpt_path == "last":
        candidates: set[str] = set()
        for callback in trainer.checkpoint_callbacks:
            if callback.last_model_path:
                candidates.add(callback.last_model_path)
            candidates |= callback.find_last_checkpoints()
        existing = {path: os.path.getmtime(path) for path in candidates if os.path.isfile(path)}
        if not existing:
            rank_zero_warn(
                f'.{stage}(ckpt_path="last") is set, but there is no last checkpoint available. No checkpoint will '
                "be loaded. HINT: Set `ModelCheckpoint(..., save_last=True)`."
            )
            return None
        return max(existing, key=existing.get)
    return os.fspath(ckpt_path)


def load_module_from_checkpoint(cls: type, checkpoint_path: Any, map_location: Any, strict: bool | None,
                                overrides: dict[str, Any]) -> Any:
    """Lightning's `load_from_checkpoint`: rebuild from the saved hyperparameters, then load the weights."""
    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location)
    module = cls(**_init_kwargs(cls, checkpoint, "hyper_parameters", "hparams_name", overrides))
    module.on_load_checkpoint(checkpoint)
    strict = True if strict is None else strict
    keys = module.load_state_dict(checkpoint["state_dict"], strict=strict)
    if not strict and (keys.missing_keys or keys.unexpected_keys):
        rank_zero_warn(f"Loaded {checkpoint_path} with strict=False: missing keys {keys.missing_keys}, unexpected "
                       f"keys {keys.unexpected_keys}.")
    tensor = next((t for t in checkpoint["state_dict"].values() if isinstance(t, torch.Tensor)), None)
    if tensor is not None:
        module.to(tensor.device)
    return module


def load_datamodule_from_checkpoint(cls: type, checkpoint_path: Any, map_location: Any,
                                    overrides: dict[str, Any]) -> Any:
    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location)
    datamodule = cls(**_init_kwargs(cls, checkpoint, "datamodule_hyper_parameters", "datamodule_hparams_name",
                                    overrides))
    state = checkpoint.get(cls.__qualname__)
    if state:
        datamodule.load_state_dict(state)
    return datamodule


def _init_kwargs(cls: type, checkpoint: dict[str, Any], hparams_key: str, name_key: str,
                 overrides: dict[str, Any]) -> dict[str, Any]:
    """Saved hyperparameters updated by `overrides`, shaped for `cls.__init__` as Lightning does.

    Hyperparameters saved from one dict argument (`hparams_name` names it) go back as that
    argument; keys `__init__` does not take are dropped unless it has `**kwargs`.
    """
    kwargs = dict(checkpoint.get(hparams_key) or {})
    kwargs.update(overrides)
    parameters = inspect.signature(cls.__init__).parameters
    args_name = checkpoint.get(name_key)
    if args_name and args_name != "kwargs" and args_name in parameters:
        return {args_name: kwargs}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {key: value for key, value in kwargs.items() if key in parameters}


# --- interrupts ---------------------------------------------------------------------------------------
def interrupted_message(trainer: Trainer, stage: str) -> str:
    """One line for Ctrl-C: where training stopped and the call that resumes it."""
    if stage != "fit":
        return f"Interrupted during trainer.{stage}()."
    where = f"Interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}."
    latest = latest_checkpoint(trainer)
    if latest is None:
        return (f"{where} No checkpoint was saved, so a rerun starts from the beginning; save periodically with "
                "ModelCheckpoint(every_n_train_steps=..., save_last=True).")
    return f'{where} Resume with trainer.fit(model, ckpt_path="{latest}")'


def latest_checkpoint(trainer: Trainer) -> str | None:
    """The newest file among those this trainer's ModelCheckpoints wrote and the one it resumed from."""
    candidates = [callback._last_checkpoint_saved for callback in trainer.checkpoint_callbacks]
    candidates.append(trainer.ckpt_path)
    existing = [path for path in candidates if path and os.path.isfile(path)]
    return max(existing, key=os.path.getmtime) if existing else None
