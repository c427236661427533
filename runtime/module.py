"""`LightningModule`: a `torch.nn.Module` that also says how it trains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from runtime.exceptions import MisconfigurationException
from runtime.hooks import CheckpointHooks, DataHooks, ModelHooks
from runtime.hparams import HyperparametersMixin
from runtime.optim import LightningOptimizer
from runtime.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from runtime.trainer import Trainer


class LightningModule(HyperparametersMixin, ModelHooks, DataHooks, CheckpointHooks, nn.Module):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer: Trainer | None = None
        self._automatic_optimization = True
        self.example_input_array: Any = None

    # --- the methods a user writes ------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return super().forward(*args, **kwargs)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        raise MisconfigurationException(
            f"{type(self).__name__} has no training_step(). Define "
            "`def training_step(self, batch, batch_idx): ... return loss` to train with Trainer.fit."
        )

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        """Optional: defined by the user to run validation."""

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        """Optional: defined by the user to run Trainer.test."""

    def predict_step(self, batch: Any, batch_idx: int = 0, dataloader_idx: int = 0) -> Any:
        return self(batch)

    def configure_optimizers(self) -> Any:
        raise MisconfigurationException(
            f"{type(self).__name__} has no configure_optimizers(). Define it and return an optimizer, e.g. "
            "`return torch.optim.Adam(self.parameters(), lr=1e-3)`."
        )

    def configure_callbacks(self) -> Any:
        return []

    # --- trainer state --------------------------------------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a Trainer; call trainer.fit(model) first.")
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        object.__setattr__(self, "_trainer", trainer)

    @property
    def automatic_optimization(self) -> bool:
        return self._automatic_optimization

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        object.__setattr__(self, "_automatic_optimization", bool(value))

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return self._trainer.root_device if self._trainer is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.get_default_dtype()

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer is not None else 0

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer is not None else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer is not None else 0

    @property
    def logger(self) -> Any:
        return self._trainer.logger if self._trainer is not None else None

    @property
    def loggers(self) -> list[Any]:
        return self._trainer.loggers if self._trainer is not None else []

    # --- logging --------------------------------------------------------------------------------------
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        trainer = self._trainer
        if trainer is None:
            rank_zero_warn(f"self.log({name!r}) was called outside a Trainer run and is ignored.")
            return
        results = trainer._results
        if results is None:
            raise MisconfigurationException(
                f"self.log({name!r}) is not supported in {trainer._fx!r}; log from the step methods or the "
                "epoch/batch hooks of fit, validate and test."
            )
        if sync_dist:
            value = trainer.strategy.reduce_for_logging(value, reduce_fx)
        results.log(trainer._fx, name, value, prog_bar, True if logger is None else logger, on_step, on_epoch,
                    reduce_fx, batch_size)

    def log_dict(
        self,
        dictionary: Mapping[str, Any],
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        for name, value in dictionary.items():
            self.log(name, value, prog_bar=prog_bar, logger=logger, on_step=on_step, on_epoch=on_epoch,
                     reduce_fx=reduce_fx, sync_dist=sync_dist, add_dataloader_idx=add_dataloader_idx,
                     batch_size=batch_size, rank_zero_only=rank_zero_only)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print once (rank zero), above the progress bar when one is showing."""
        trainer = self._trainer
        if trainer is not None and not trainer.is_global_zero:
            return
        bar = trainer.progress_bar_callback if trainer is not None else None
        if bar is not None and bar.is_enabled:
            bar.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    # --- optimization ---------------------------------------------------------------------------------
    def optimizers(self, use_pl_optimizer: bool = True) -> Any:
        trainer = self.trainer
        optimizers = trainer._lightning_optimizers if use_pl_optimizer else trainer.optimizers
        return optimizers[0] if len(optimizers) == 1 else optimizers

    def lr_schedulers(self) -> Any:
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        if not schedulers:
            return None
        return schedulers[0] if len(schedulers) == 1 else schedulers

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward through the precision plugin (loss scaling under 16-mixed); use instead of loss.backward()."""
        trainer = self.trainer
        if self.automatic_optimization:
            raise MisconfigurationException(
                "manual_backward() is for manual optimization; set `self.automatic_optimization = False` in __init__, "
                "or return the loss from training_step and let the Trainer call backward."
            )
        arm_gradient_sync = trainer.strategy.before_manual_backward
        if arm_gradient_sync is not None:
            arm_gradient_sync(loss)
        trainer._run_backward(loss, *args, **kwargs)

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        loss.backward(*args, **kwargs)

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Callable[[], Any] | None = None
    ) -> None:
        optimizer.step(closure=optimizer_closure)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if gradient_clip_val is None or gradient_clip_val == 0:
            return
        algorithm = gradient_clip_algorithm or "norm"
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(parameters, gradient_clip_val)
        elif algorithm == "value":
            torch.nn.utils.clip_grad_value_(parameters, gradient_clip_val)
        else:
            raise MisconfigurationException(
                f"gradient_clip_algorithm={algorithm!r} is not supported; use 'norm' or 'value'."
            )

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def toggle_optimizer(self, optimizer: Any) -> None:
        """Freeze every parameter the given optimizer does not own, so a backward only reaches its own."""
        target = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        owned = {id(p) for group in target.param_groups for p in group["params"]}
        saved: dict[int, bool] = {}
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for param in group["params"]:
                    if id(param) not in owned and id(param) not in saved:
                        saved[id(param)] = param.requires_grad
                        param.requires_grad = False
        object.__setattr__(self, "_param_requires_grad_state", saved)

    def untoggle_optimizer(self, optimizer: Any) -> None:
        saved: dict[int, bool] = getattr(self, "_param_requires_grad_state", {})
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for param in group["params"]:
                    if id(param) in saved:
                        param.requires_grad = saved[id(param)]
        object.__setattr__(self, "_param_requires_grad_state", {})

    def freeze(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        self.eval()

    def unfreeze(self) -> None:
        for param in self.parameters():
            param.requires_grad = True
        self.train()

    # --- checkpoints ----------------------------------------------------------------------------------
    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> LightningModule:
        """Rebuild the module from a checkpoint's saved hyperparameters (overridable by `kwargs`) and weights."""
        from runtime.checkpoint import load_module_from_checkpoint

        return load_module_from_checkpoint(cls, checkpoint_path, map_location, strict, kwargs)
