"""`Trainer`: Lightning's arguments and entry points over the loops in `runtime.loops`."""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import math
import os
import sys
from collections.abc import Iterable
from typing import Any

import torch

from runtime.accelerator import choose_device
from runtime.callbacks.callback import Callback, overrides
from runtime.callbacks.model_checkpoint import ModelCheckpoint
from runtime.callbacks.model_summary import ModelSummary
from runtime.callbacks.progress import ProgressBar, TQDMProgressBar
from runtime.callbacks.timer import Timer
from runtime.checkpoint import interrupted_message
from runtime.data import count_batches, limit_batches, resolve_dataloaders, without_shuffle
from runtime.datamodule import LightningDataModule
from runtime.device_transfer import move_data_to_device
from runtime.distributed_sampler import distribute_loader
from runtime.exceptions import MisconfigurationException
from runtime.hook_dispatch import HookDispatcher
from runtime.legacy import translate_trainer_kwargs, warn_legacy
from runtime.loggers import CSVLogger, Logger
from runtime.loops import EvaluationLoop, FitLoop, PredictLoop, run_sanity_check
from runtime.metrics import LoggedMetric, ResultCollection, to_float
from runtime.module import LightningModule
from runtime.optim import LightningOptimizer, LRSchedulerConfig, parse_configure_optimizers
from runtime.precision import make_precision
from runtime.rank_zero import rank_zero_info
from runtime.strategy import make_strategy


class Trainer:
    def __init__(
        self,
        *,
        accelerator: str = "auto",
        strategy: Any = "auto",
        devices: Any = "auto",
        num_nodes: int = 1,
        precision: Any = None,
        logger: Any = None,
        callbacks: Any = None,
        fast_dev_run: int | bool = False,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        max_steps: int = -1,
        min_steps: int | None = None,
        max_time: Any = None,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        val_check_interval: int | float | None = None,
        check_val_every_n_epoch: int | None = 1,
        num_sanity_val_steps: int | None = None,
        log_every_n_steps: int | None = None,
        enable_checkpointing: bool | None = None,
        enable_progress_bar: bool | None = None,
        enable_model_summary: bool | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        use_distributed_sampler: bool = True,
        profiler: Any = None,
        detect_anomaly: bool = False,
        barebones: bool = False,
        plugins: Any = None,
        sync_batchnorm: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: str | os.PathLike | None = None,
        **legacy_kwargs: Any,
    ) -> None:
        valid = [p for p in inspect.signature(Trainer.__init__).parameters if p not in ("self", "legacy_kwargs")]
        translated = translate_trainer_kwargs(legacy_kwargs, valid)
        accelerator = translated.get("accelerator", accelerator)
        devices = translated.get("devices", devices)
        enable_checkpointing = translated.get("enable_checkpointing", enable_checkpointing)
        enable_model_summary = translated.get("enable_model_summary", enable_model_summary)
        self._resume_from_checkpoint = translated.get("_resume_from_checkpoint")

        self._device_choice = choose_device(accelerator, devices)
        self.strategy = make_strategy(strategy, self._device_choice, num_nodes)
        self.precision_plugin = make_precision("32-true" if precision is None else precision,
                                               self._device_choice.accelerator)
        self.precision = self.precision_plugin.name
        self.default_root_dir = os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()

        self.fast_dev_run = int(fast_dev_run) if fast_dev_run is not True else 1
        if self.fast_dev_run < 0:
            raise MisconfigurationException(f"fast_dev_run={fast_dev_run} must be a bool or a positive int.")
        if self.fast_dev_run:
            n = self.fast_dev_run
            limit_train_batches = limit_val_batches = limit_test_batches = limit_predict_batches = n
            max_steps, max_epochs, num_sanity_val_steps, val_check_interval = n, 1, 0, 1.0
            check_val_every_n_epoch = 1
            logger = False
            enable_checkpointing = False
            rank_zero_info(f"Running in `fast_dev_run` mode: will run the requested loop using {n} batch(es). "
                           "Logging and checkpointing are off.")
        if overfit_batches:
            limit_train_batches = limit_val_batches = overfit_batches
        self.overfit_batches = overfit_batches

        if max_epochs is None:
            max_epochs = 1000 if max_steps == -1 and max_time is None else -1
        for name, value in (("max_epochs", max_epochs), ("max_steps", max_steps)):
            if value < -1:
                raise MisconfigurationException(f"{name}={value} must be -1 (no limit) or >= 0.")
        self.max_epochs = max_epochs
        self.min_epochs = min_epochs
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.max_time_seconds = _parse_max_time(max_time)

        self.limit_train_batches = limit_train_batches
        self.limit_val_batches = limit_val_batches
        self.limit_test_batches = limit_test_batches
        self.limit_predict_batches = limit_predict_batches
        self.val_check_interval = 1.0 if val_check_interval is None else val_check_interval
        self.check_val_every_n_epoch = check_val_every_n_epoch
        _validate_val_schedule(self.val_check_interval, check_val_every_n_epoch)
        self.num_sanity_val_steps = 2 if num_sanity_val_steps is None else num_sanity_val_steps
        self.log_every_n_steps = 50 if log_every_n_steps is None else log_every_n_steps
        if self.log_every_n_steps < 1:
            raise MisconfigurationException(f"log_every_n_steps={log_every_n_steps} must be >= 1.")

        if not isinstance(accumulate_grad_batches, int) or accumulate_grad_batches < 1:
            raise MisconfigurationException(
                f"accumulate_grad_batches={accumulate_grad_batches!r} must be an int >= 1; for a schedule use "
                "the GradientAccumulationScheduler callback."
            )
        self.accumulate_grad_batches = accumulate_grad_batches
        if gradient_clip_algorithm not in (None, "norm", "value"):
            raise MisconfigurationException(
                f"gradient_clip_algorithm={gradient_clip_algorithm!r} is not supported; use 'norm' or 'value'."
            )
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm or "norm"
        self.inference_mode = inference_mode
        self.use_distributed_sampler = use_distributed_sampler
        self.reload_dataloaders_every_n_epochs = reload_dataloaders_every_n_epochs
        self._detect_anomaly = detect_anomaly
        _apply_determinism(deterministic, benchmark)

        if barebones:
            logger, enable_checkpointing, enable_progress_bar, enable_model_summary = False, False, False, False
        self.loggers = _make_loggers(logger, self.default_root_dir)
        self.callbacks = _make_callbacks(
            callbacks,
            enable_progress_bar=enable_progress_bar is not False,
            refresh_rate=translated.get("_progress_bar_refresh_rate"),
            enable_model_summary=enable_model_summary is not False,
            enable_checkpointing=enable_checkpointing is not False,
            max_time_seconds=self.max_time_seconds,
        )
        self._enable_checkpointing = enable_checkpointing is not False

        self.fit_loop = FitLoop(self)
        self.validate_loop = EvaluationLoop(self, "validate")
        self.test_loop = EvaluationLoop(self, "test")
        self.predict_loop = PredictLoop(self)

        self.lightning_module: LightningModule | None = None
        self.datamodule: LightningDataModule | None = None
        self._optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[LRSchedulerConfig] = []
        self._lightning_optimizers: list[LightningOptimizer] = []
        self.train_dataloader: Any = None
        self.val_dataloaders: list[Any] = []
        self.test_dataloaders: list[Any] = []
        self.predict_dataloaders: list[Any] = []
        self.num_training_batches: float = math.inf
        self.num_val_batches: list[float] = []
        self.num_test_batches: list[float] = []
        self.num_predict_batches: list[float] = []
        self.num_sanity_val_batches_total = 0.0

        self.state_fn: str | None = None
        self.training = False
        self.sanity_checking = False
        self.should_stop = False
        self._fx = ""
        self._results: ResultCollection | None = None
        self._train_results = ResultCollection("train")
        self._hooks = HookDispatcher(self, None, [])
        self._callback_metrics: dict[str, Any] = {}
        self._logged_metrics: dict[str, Any] = {}
        self._progress_bar_metrics: dict[str, Any] = {}
        self._val_schedule_count = 0
        self._legacy_training_epoch_end = False
        self._legacy_eval_hooks: dict[str, Any] = {}
        self._transfer_batch = self._transfer_general
        # What `training_step` is called on: the module, or the DDP wrapper whose forward runs it.
        self._step_owner: Any = None
        self.ckpt_path: str | None = None

    # --- public properties ----------------------------------------------------------------------------
    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self._optimizers

    @optimizers.setter
    def optimizers(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Assignable mid-fit, as in Lightning (a second training phase installs its own optimizer):
        the next step uses the new ones."""
        self._optimizers = list(optimizers)
        self._lightning_optimizers = [LightningOptimizer(opt, self) for opt in self._optimizers]

    @property
    def current_epoch(self) -> int:
        return self.fit_loop.epoch

    @property
    def global_step(self) -> int:
        return self.fit_loop.global_step

    @property
    def root_device(self) -> torch.device:
        return self.strategy.root_device

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    @property
    def global_rank(self) -> int:
        return self.strategy.global_rank

    @property
    def local_rank(self) -> int:
        return self.strategy.local_rank

    @property
    def node_rank(self) -> int:
        return self.strategy.node_rank

    @property
    def is_global_zero(self) -> bool:
        return self.strategy.is_global_zero

    @property
    def num_devices(self) -> int:
        return self._device_choice.num_devices

    @property
    def device_ids(self) -> list[int]:
        return list(self._device_choice.device_ids)

    @property
    def accelerator(self) -> str:
        return self._device_choice.accelerator

    @property
    def logger(self) -> Logger | None:
        return self.loggers[0] if self.loggers else None

    @logger.setter
    def logger(self, logger: Logger | None) -> None:
        self.loggers = [logger] if logger is not None else []

    @property
    def log_dir(self) -> str:
        logger = self.logger
        if logger is None:
            return self.default_root_dir
        return logger.log_dir or logger.save_dir or self.default_root_dir

    @property
    def progress_bar_callback(self) -> ProgressBar | None:
        return next((cb for cb in self.callbacks if isinstance(cb, ProgressBar)), None)

    @property
    def checkpoint_callbacks(self) -> list[Callback]:
        from runtime.callbacks.model_checkpoint import ModelCheckpoint

        return [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]

    @property
    def checkpoint_callback(self) -> Callback | None:
        found = self.checkpoint_callbacks
        return found[0] if found else None

    @property
    def early_stopping_callbacks(self) -> list[Callback]:
        from runtime.callbacks.early_stopping import EarlyStopping

        return [cb for cb in self.callbacks if isinstance(cb, EarlyStopping)]

    @property
    def early_stopping_callback(self) -> Callback | None:
        found = self.early_stopping_callbacks
        return found[0] if found else None

    @property
    def validating(self) -> bool:
        return self._fx.startswith(("on_validation", "validation")) or self.sanity_checking

    @property
    def testing(self) -> bool:
        return self.state_fn == "test"

    @property
    def predicting(self) -> bool:
        return self.state_fn == "predict"

    @property
    def callback_metrics(self) -> dict[str, Any]:
        """Everything logged, for callbacks: latest step values and epoch values, read without reducing twice."""
        metrics = dict(self._callback_metrics)
        if self._results is not None:
            for key, (metric, value) in self._results.step_values().items():
                metrics[key] = value
                if metric.on_epoch:
                    continue
                metrics[metric.name] = value
            for key, (metric, value) in self._results.epoch_values().items():
                metrics[key] = value
                metrics[metric.name] = value
        return metrics

    @property
    def logged_metrics(self) -> dict[str, Any]:
        return dict(self._logged_metrics)

    @property
    def progress_bar_metrics(self) -> dict[str, Any]:
        metrics = dict(self._progress_bar_metrics)
        if self._results is self._train_results:
            for key, (metric, value) in self._results.step_values().items():
                if metric.prog_bar:
                    metrics[key] = value
        return metrics

    @property
    def estimated_stepping_batches(self) -> float:
        if self.max_steps != -1:
            return self.max_steps
        if self.train_dataloader is None and self.lightning_module is not None:
            self._setup_train_data()
        batches = self.num_training_batches
        if math.isinf(batches) or self.max_epochs == -1:
            return math.inf
        return math.ceil(batches / self.accumulate_grad_batches) * self.max_epochs

    # --- entry points ---------------------------------------------------------------------------------
    def fit(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        ckpt_path: str | None = None,
    ) -> None:
        if isinstance(train_dataloaders, LightningDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        ckpt_path = ckpt_path or self._resume_from_checkpoint
        self._run("fit", model, datamodule, ckpt_path, train=train_dataloaders, val=val_dataloaders)

    def validate(self, model: LightningModule | None = None, dataloaders: Any = None, ckpt_path: str | None = None,
                 verbose: bool = True, datamodule: LightningDataModule | None = None) -> list[dict[str, float]]:
        return self._evaluate("validate", model, dataloaders, ckpt_path, verbose, datamodule)

    def test(self, model: LightningModule | None = None, dataloaders: Any = None, ckpt_path: str | None = None,
             verbose: bool = True, datamodule: LightningDataModule | None = None,
             **legacy: Any) -> list[dict[str, float]]:
        if "test_dataloaders" in legacy:
            warn_legacy("trainer.test(test_dataloaders=...)", "trainer.test(dataloaders=...)")
            dataloaders = legacy.pop("test_dataloaders")
        if legacy:
            raise TypeError(f"Trainer.test got unexpected arguments {sorted(legacy)}.")
        return self._evaluate("test", model, dataloaders, ckpt_path, verbose, datamodule)

    def predict(self, model: LightningModule | None = None, dataloaders: Any = None,
                datamodule: LightningDataModule | None = None, return_predictions: bool | None = None,
                ckpt_path: str | None = None) -> Any:
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        return self._run("predict", model, datamodule, ckpt_path, predict=dataloaders,
                         return_predictions=return_predictions is not False)

    def _evaluate(self, stage: str, model: Any, dataloaders: Any, ckpt_path: str | None, verbose: bool,
                  datamodule: Any) -> list[dict[str, float]]:
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        key = "val" if stage == "validate" else "test"
        results = self._run(stage, model, datamodule, ckpt_path, **{key: dataloaders})
        if verbose and self.is_global_zero:
            _print_results_table(stage, results)
        return results

    # --- run orchestration ------------------------------------------------------------------------------
    def _run(self, stage: str, model: LightningModule | None, datamodule: Any, ckpt_path: str | None,
             **loaders: Any) -> Any:
        model = self._attach(stage, model, datamodule)
        self.state_fn = stage
        return self.strategy.launch(self, functools.partial(self._run_on_this_rank, stage, model, ckpt_path, loaders))

    def _run_on_this_rank(self, stage: str, model: LightningModule, ckpt_path: str | None,
                          loaders: dict[str, Any]) -> Any:
        self.should_stop = False
        self._failed = False
        self.strategy.setup_environment()
        try:
            with torch.autograd.set_detect_anomaly(self._detect_anomaly) if self._detect_anomaly \
                    else contextlib.nullcontext():
                return self._run_stage(stage, model, ckpt_path, loaders)
        except KeyboardInterrupt as interrupt:
            # Ctrl-C: callbacks clean up, then one line on how to resume, and the shell's SIGINT exit code.
            self._on_exception(interrupt)
            print(interrupted_message(self, stage), file=sys.stderr)
            raise SystemExit(130) from interrupt
        except BaseException as exception:
            self._on_exception(exception)
            raise
        finally:
            self._teardown(stage)

    def _rank_zero_output(self, result: Any) -> dict[str, Any]:
        """What a `ddp_spawn` worker hands back to the main process, which trained nothing itself."""
        cpu = torch.device("cpu")
        return {
            "result": move_data_to_device(result, cpu),
            "state_dict": move_data_to_device(self.lightning_module.state_dict(), cpu),
            "loop": {name: getattr(self.fit_loop, name) for name in _LOOP_COUNTERS},
            "metrics": move_data_to_device(
                (self._callback_metrics, self._logged_metrics, self._progress_bar_metrics), cpu),
            "checkpoint_callbacks": [callback.state_dict() for callback in self.checkpoint_callbacks],
        }

    def _take_rank_zero_output(self, output: dict[str, Any]) -> None:
        """The trained weights, counters, metrics and best/last checkpoint paths, as if this process had trained."""
        self.lightning_module.load_state_dict(output["state_dict"])
        for name, value in output["loop"].items():
            setattr(self.fit_loop, name, value)
        self._callback_metrics, self._logged_metrics, self._progress_bar_metrics = output["metrics"]
        for callback, state in zip(self.checkpoint_callbacks, output["checkpoint_callbacks"]):
            callback.dirpath = state["dirpath"]
            callback.load_state_dict(state)

    def _attach(self, stage: str, model: LightningModule | None, datamodule: Any) -> LightningModule:
        if model is None:
            model = self.lightning_module
            if model is None:
                raise MisconfigurationException(
                    f"trainer.{stage}() needs a model: pass it as trainer.{stage}(model, ...)."
                )
        if not isinstance(model, LightningModule):
            raise MisconfigurationException(
                f"trainer.{stage}() expects a LightningModule, got {type(model).__name__}. Wrap the network in a "
                "LightningModule that defines training_step and configure_optimizers."
            )
        model.trainer = self
        self.lightning_module = model
        if datamodule is not None:
            datamodule.trainer = self
            self.datamodule = datamodule
        return model

    def _run_stage(self, stage: str, model: LightningModule, ckpt_path: str | None, loaders: dict[str, Any]) -> Any:
        self._check_module(stage, model)
        self._prepare_and_setup(stage, model)
        self.callbacks = _merge_model_callbacks(self.callbacks, model.configure_callbacks())
        self._hooks = HookDispatcher(self, model, self.callbacks)
        self._legacy_training_epoch_end = _legacy_hook(model, "training_epoch_end", "on_train_epoch_end")
        self._legacy_eval_hooks = {
            prefix: getattr(model, f"{prefix}_epoch_end")
            for prefix in ("validation", "test")
            if _legacy_hook(model, f"{prefix}_epoch_end", f"on_{prefix}_epoch_end")
        }
        self._hooks.call("configure_model")
        self.strategy.model_to_device(model)
        self.precision_plugin.convert_module(model)
        self._step_owner = self.strategy.wrap_for_training(model) if stage == "fit" else model
        self._transfer_batch = self._choose_transfer(model)
        if stage == "fit":
            self._configure_optimizers(model)
        self._restore_checkpoint(stage, ckpt_path)
        if stage == "fit":
            return self._run_fit(model, loaders)
        if stage == "predict":
            return self._run_predict(loaders["predict"])
        return self._run_evaluation_stage(stage, loaders.get("val" if stage == "validate" else "test"))

    def _check_module(self, stage: str, model: LightningModule) -> None:
        if stage == "fit" and not overrides(model, LightningModule, "training_step"):
            raise MisconfigurationException(
                f"{type(model).__name__} has no training_step(). Define "
                "`def training_step(self, batch, batch_idx): ... return loss` to train with Trainer.fit."
            )
        if stage == "fit" and not overrides(model, LightningModule, "configure_optimizers"):
            raise MisconfigurationException(
                f"{type(model).__name__} has no configure_optimizers(). Define it and return an optimizer, e.g. "
                "`return torch.optim.Adam(self.parameters(), lr=1e-3)`."
            )
        step = {"validate": "validation_step", "test": "test_step"}.get(stage)
        if step and not overrides(model, LightningModule, step):
            raise MisconfigurationException(
                f"trainer.{stage}() needs {type(model).__name__}.{step}(self, batch, batch_idx); define it."
            )

    def _prepare_and_setup(self, stage: str, model: LightningModule) -> None:
        stage_name = {"validate": "validate", "test": "test", "predict": "predict"}.get(stage, "fit")
        for owner in (self.datamodule, model):
            if owner is not None and self._prepares_data_here(owner):
                owner.prepare_data()
        self.strategy.barrier("prepare_data")
        if self.datamodule is not None:
            self.datamodule.setup(stage=stage_name)
        for callback in self.callbacks:
            callback.setup(self, model, stage_name)
        model.setup(stage=stage_name)

    def _prepares_data_here(self, owner: Any) -> bool:
        """Once per node (local rank 0) by default; once in all (global rank 0) with prepare_data_per_node=False."""
        if getattr(owner, "prepare_data_per_node", True):
            return self.local_rank == 0
        return self.is_global_zero

    def _teardown(self, stage: str) -> None:
        stage_name = stage if stage in ("validate", "test", "predict") else "fit"
        model = self.lightning_module
        if self.datamodule is not None:
            self.datamodule.teardown(stage=stage_name)
        for callback in self.callbacks:
            callback.teardown(self, model, stage_name)
        if model is not None:
            model.teardown(stage=stage_name)
        self._results = None
        self.training = False
        self._step_owner = None
        if not self._failed:
            for logger in self.loggers:
                logger.finalize("success")
        self.strategy.teardown(failed=self._failed)

    def _on_exception(self, exception: BaseException) -> None:
        self._failed = True
        for callback in self.callbacks:
            if overrides(callback, Callback, "on_exception"):
                callback.on_exception(self, self.lightning_module, exception)
        for logger in self.loggers:
            logger.finalize("failed" if not isinstance(exception, KeyboardInterrupt) else "interrupted")

    def _configure_optimizers(self, model: LightningModule) -> None:
        self._fx = "configure_optimizers"
        optimizers, configs, _ = parse_configure_optimizers(model.configure_optimizers())
        if model.automatic_optimization and len(optimizers) > 1:
            raise MisconfigurationException(
                f"configure_optimizers returned {len(optimizers)} optimizers. Training with several optimizers "
                "needs manual optimization: set `self.automatic_optimization = False` in __init__ and step each "
                "optimizer in training_step (see self.optimizers(), self.manual_backward())."
            )
        self.optimizers = optimizers
        self.lr_scheduler_configs = configs

    def _restore_checkpoint(self, stage: str, ckpt_path: str | None) -> None:
        if ckpt_path is None:
            self.ckpt_path = None
            return
        from runtime.checkpoint import restore_trainer_state

        self.ckpt_path = restore_trainer_state(self, stage, ckpt_path)

    def _run_fit(self, model: LightningModule, loaders: dict[str, Any]) -> None:
        self._setup_train_data(loaders.get("train"))
        self._setup_val_data(loaders.get("val"))
        # Validation counted across epochs (check_val_every_n_epoch=None) continues after a resume.
        self._val_schedule_count = self.fit_loop.total_batch_idx
        self._log_hyperparams(model)
        self.training = True
        self._fx = "on_fit_start"
        self._call_hook("on_fit_start")
        if self._validation_enabled and self.num_sanity_val_steps != 0 and not self.fit_loop.global_step:
            self.num_sanity_val_batches_total = sum(
                min(n, self.num_sanity_val_steps) if self.num_sanity_val_steps > 0 else n for n in self.num_val_batches
            )
            run_sanity_check(self, self.validate_loop, self.val_dataloaders, self.num_sanity_val_steps)
        self.fit_loop.run()
        self.training = False
        self._fx = "on_fit_end"
        self._call_hook("on_fit_end")

    def _run_evaluation_stage(self, stage: str, given: Any) -> list[dict[str, float]]:
        kind = "val" if stage == "validate" else "test"
        loaders = resolve_dataloaders(kind, given, self.datamodule, self.lightning_module)
        if not loaders:
            raise MisconfigurationException(
                f"trainer.{stage}() found no {kind} dataloader: pass dataloaders=..., a datamodule with "
                f"{kind}_dataloader(), or define {kind}_dataloader() on the module."
            )
        loaders = self._distribute(loaders, train=False)
        limits = [self._limit_eval(loader, kind) for loader in loaders]
        if kind == "val":
            self.val_dataloaders, self.num_val_batches = loaders, limits
        else:
            self.test_dataloaders, self.num_test_batches = loaders, limits
        loop = self.validate_loop if kind == "val" else self.test_loop
        return loop.run(loaders, limits, log_to_loggers=True)

    def _run_predict(self, given: Any) -> Any:
        loaders = resolve_dataloaders("predict", given, self.datamodule, self.lightning_module)
        if not loaders:
            raise MisconfigurationException(
                "trainer.predict() found no dataloader: pass dataloaders=..., a datamodule with "
                "predict_dataloader(), or define predict_dataloader() on the module."
            )
        self.predict_dataloaders = loaders = self._distribute(loaders, train=False)
        self.num_predict_batches = [self._limit_eval(loader, "predict") for loader in loaders]
        return self.predict_loop.run(loaders, self.num_predict_batches, self._return_predictions)

    _return_predictions = True

    # --- data ---------------------------------------------------------------------------------------------
    def _setup_train_data(self, given: Any = None) -> None:
        loaders = resolve_dataloaders("train", given, self.datamodule, self.lightning_module)
        if not loaders:
            raise MisconfigurationException(
                "trainer.fit() found no training data: pass train_dataloaders=..., a datamodule with "
                "train_dataloader(), or define train_dataloader() on the module."
            )
        if len(loaders) > 1:
            raise MisconfigurationException(
                "trainer.fit() got several train dataloaders; this runtime trains from one. Combine the datasets "
                "(torch.utils.data.ConcatDataset) into one loader."
            )
        loader = loaders[0]
        if self.overfit_batches:
            loader = without_shuffle(loader)
        loader = self._distribute([loader], train=True)[0]
        self.train_dataloader = loader
        self.num_training_batches = limit_batches(count_batches(loader), self.limit_train_batches,
                                                  "limit_train_batches")
        if isinstance(self.val_check_interval, int) and self.check_val_every_n_epoch is not None:
            if self.val_check_interval > self.num_training_batches:
                raise MisconfigurationException(
                    f"val_check_interval={self.val_check_interval} is larger than the {int(self.num_training_batches)}"
                    " training batches per epoch; use a smaller value, or set check_val_every_n_epoch=None to count "
                    "batches across epochs."
                )

    def _setup_val_data(self, given: Any) -> None:
        model = self.lightning_module
        has_step = overrides(model, LightningModule, "validation_step")
        loaders = resolve_dataloaders("val", given, self.datamodule, model) if has_step else []
        if self.overfit_batches and has_step and not loaders:
            loaders = [self.train_dataloader]
        loaders = self._distribute(loaders, train=False)
        self.val_dataloaders = loaders
        self.num_val_batches = [self._limit_eval(loader, "val") for loader in loaders]

    def _distribute(self, loaders: list[Any], train: bool) -> list[Any]:
        """Each rank reads its own share of every loader: train keeps its shuffle, evaluation reads in order."""
        if not (self.use_distributed_sampler and self.strategy.is_distributed):
            return loaders
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        return [distribute_loader(loader, self.world_size, self.global_rank, None if train else False, seed)
                for loader in loaders]

    def _limit_eval(self, loader: Any, kind: str) -> float:
        limit = {"val": self.limit_val_batches, "test": self.limit_test_batches,
                 "predict": self.limit_predict_batches}[kind]
        return limit_batches(count_batches(loader), limit, f"limit_{kind}_batches")

    @property
    def _validation_enabled(self) -> bool:
        return bool(self.val_dataloaders) and any(n > 0 for n in self.num_val_batches)

    def _should_validate(self, batch_idx: int, is_last: bool) -> bool:
        if not self._validation_enabled:
            return False
        every = self.check_val_every_n_epoch
        interval = self.val_check_interval
        if every is not None and (self.current_epoch + 1) % every != 0:
            return False
        if isinstance(interval, float):
            if interval == 1.0 or math.isinf(self.num_training_batches):
                return is_last
            check_every = max(1, int(self.num_training_batches * interval))
            return (batch_idx + 1) % check_every == 0 or (is_last and interval == 1.0)
        if every is None:
            self._val_schedule_count += 1
            return self._val_schedule_count % interval == 0
        return (batch_idx + 1) % interval == 0

    def _run_validation(self) -> None:
        module = self.lightning_module
        self.validate_loop.run(self.val_dataloaders, self.num_val_batches, log_to_loggers=True)
        if self.training:
            module.train()

    # --- the step path ---------------------------------------------------------------------------------------
    def _choose_transfer(self, model: LightningModule) -> Any:
        """Skip batch transfer entirely on CPU fp32 unless a transfer hook is overridden."""
        hooks = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
        custom = any(self._hooks.module_hook(h) for h in hooks) or (
            self.datamodule is not None and any(overrides(self.datamodule, LightningDataModule, h) for h in hooks)
        )
        if not custom and self.root_device.type == "cpu" and type(self.precision_plugin).convert_input is \
                type(self.precision_plugin).__mro__[-2].convert_input:
            return _identity_transfer
        if not custom:
            device = self.root_device
            convert = self.precision_plugin.convert_input
            return lambda batch, loader_idx: move_data_to_device(convert(batch), device)
        return self._transfer_general

    def _transfer_general(self, batch: Any, dataloader_idx: int) -> Any:
        batch = self.precision_plugin.convert_input(batch)
        owner = self._transfer_owner
        batch = owner("on_before_batch_transfer")(batch, dataloader_idx)
        batch = owner("transfer_batch_to_device")(batch, self.root_device, dataloader_idx)
        return owner("on_after_batch_transfer")(batch, dataloader_idx)

    def _transfer_owner(self, hook: str) -> Any:
        datamodule = self.datamodule
        if datamodule is not None and overrides(datamodule, LightningDataModule, hook):
            return getattr(datamodule, hook)
        return getattr(self.lightning_module, hook)

    def _training_step_loss(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor | None, Any]:
        with self.precision_plugin.forward_context():
            output = self._step_owner.training_step(batch, batch_idx)
        if output is None:
            return None, None
        if isinstance(output, torch.Tensor):
            return output, {"loss": output.detach()}
        if isinstance(output, dict):
            if "loss" not in output:
                raise MisconfigurationException(
                    f"training_step returned a dict without a 'loss' key (keys: {sorted(output)}); "
                    "add the loss under 'loss'."
                )
            loss = output["loss"]
            return loss, {**output, "loss": loss.detach()}
        raise MisconfigurationException(
            f"training_step returned {type(output).__name__}; return the loss tensor, a dict with 'loss', or None "
            "to skip the batch."
        )

    def _zero_grad(self, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        hooks = self._hooks
        if "on_before_zero_grad" in hooks.listened_step_hooks:
            self._fx = "on_before_zero_grad"
            hooks.call("on_before_zero_grad", optimizer)
            self._fx = "training_step"
        self.lightning_module.optimizer_zero_grad(self.current_epoch, batch_idx, optimizer)

    def _run_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        hooks = self._hooks
        fx = self._fx
        if "on_before_backward" in hooks.listened_step_hooks:
            self._fx = "on_before_backward"
            hooks.call("on_before_backward", loss)
        self.precision_plugin.backward(loss, self.lightning_module, *args, **kwargs)
        if "on_after_backward" in hooks.listened_step_hooks:
            self._fx = "on_after_backward"
            hooks.call("on_after_backward")
        self._fx = fx

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """After the closure: hooks see unscaled gradients, then automatic clipping."""
        module = self.lightning_module
        hooks = self._hooks
        if "on_before_optimizer_step" in hooks.listened_step_hooks:
            fx = self._fx
            self._fx = "on_before_optimizer_step"
            hooks.call("on_before_optimizer_step", optimizer)
            self._fx = fx
        if module.automatic_optimization and self.gradient_clip_val:
            module.configure_gradient_clipping(optimizer, self.gradient_clip_val, self.gradient_clip_algorithm)

    def _count_optimizer_step(self) -> None:
        self.fit_loop.global_step += 1

    def _step_schedulers(self, interval: str, plateau: bool | None = None) -> None:
        """Step the schedulers of `interval`; `plateau` picks monitor-driven ones (None: both)."""
        if not self.lr_scheduler_configs or not self.lightning_module.automatic_optimization:
            return
        index = self.fit_loop.batches_that_stepped if interval == "step" else self.current_epoch
        for config in self.lr_scheduler_configs:
            if config.interval != interval or (plateau is not None and config.reduce_on_plateau != plateau):
                continue
            if (index + 1) % config.frequency != 0:
                continue
            metric = None
            if config.reduce_on_plateau:
                metric = self.callback_metrics.get(config.monitor)
                if metric is None:
                    if config.strict:
                        raise MisconfigurationException(
                            f"ReduceLROnPlateau monitors {config.monitor!r}, which was never logged. Logged keys: "
                            f"{sorted(self.callback_metrics) or 'none'}. Log it with self.log({config.monitor!r}, "
                            "value) or set 'strict': False."
                        )
                    continue
            self.lightning_module.lr_scheduler_step(config.scheduler, metric)

    def _call_hook(self, name: str, *args: Any) -> Any:
        return self._hooks.call(name, *args)

    def _legacy_eval_epoch_end(self, prefix: str) -> Any:
        """The 1.x `{validation,test}_epoch_end(outputs)`, found (and warned about) once per run."""
        return self._legacy_eval_hooks.get(prefix)

    # --- metrics ---------------------------------------------------------------------------------------------------
    def _log_train_step_metrics(self, step: int) -> None:
        if not self.loggers:
            return
        row = {key: to_float(value) for key, (metric, value) in self._train_results.step_values().items()
               if metric.logger}
        if row:
            row["epoch"] = self.current_epoch
            self._send_to_loggers(row, step)

    def _finish_train_epoch_metrics(self, step: int) -> None:
        for key, (metric, value) in self._train_results.step_values().items():
            self._callback_metrics[key] = value
            if not metric.on_epoch:
                self._callback_metrics[metric.name] = value
            if metric.prog_bar:
                self._progress_bar_metrics[key] = value
        self._store_epoch_metrics(self._train_results.reduce_epoch(), step, log=True)

    def _finish_eval_metrics(self, results: ResultCollection, log_to_loggers: bool) -> list[dict[str, float]]:
        reduced = results.reduce_epoch()
        if not self.sanity_checking:
            step = self.fit_loop.batches_that_stepped if self.state_fn == "fit" else self.global_step
            self._store_epoch_metrics(reduced, step, log=log_to_loggers)
        per_loader: dict[int, dict[str, float]] = {}
        loader_count = max(1, len(self.val_dataloaders if self.state_fn != "test" else self.test_dataloaders))
        for key, (metric, value) in reduced.items():
            index = _dataloader_index(key)
            targets = [index] if index is not None else range(loader_count)
            for target in targets:
                per_loader.setdefault(target, {})[key] = to_float(value)
        return [per_loader.get(i, {}) for i in range(loader_count)]

    def _store_epoch_metrics(self, reduced: dict[str, tuple[LoggedMetric, torch.Tensor]], step: int,
                             log: bool) -> None:
        row: dict[str, float] = {}
        for key, (metric, value) in reduced.items():
            self._callback_metrics[key] = value
            self._callback_metrics[metric.name] = value
            if metric.prog_bar:
                self._progress_bar_metrics[key] = value
            if metric.logger:
                self._logged_metrics[key] = value
                row[key] = to_float(value)
        if log and row and self.loggers:
            row["epoch"] = self.current_epoch
            self._send_to_loggers(row, step)

    def _forget_stage_metrics(self, results: ResultCollection) -> None:
        results.reset()
        self._callback_metrics.clear()
        self._progress_bar_metrics.clear()

    def _send_to_loggers(self, row: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics(row, step=step)

    def _log_hyperparams(self, model: LightningModule) -> None:
        if not self.loggers:
            return
        params: dict[str, Any] = {}
        if getattr(model, "_log_hyperparams", True):
            params.update(model.hparams_initial)
        if self.datamodule is not None and getattr(self.datamodule, "_log_hyperparams", True):
            params.update(self.datamodule.hparams_initial)
        for logger in self.loggers:
            logger.log_hyperparams(params)
            logger.save()

    # --- checkpoints -------------------------------------------------------------------------------------------
    def save_checkpoint(self, filepath: str | os.PathLike, weights_only: bool = False,
                        storage_options: Any = None) -> None:
        from runtime.checkpoint import save_trainer_checkpoint

        if self.lightning_module is None:
            raise MisconfigurationException(
                "trainer.save_checkpoint() needs a model: call it after trainer.fit(model) has started."
            )
        save_trainer_checkpoint(self, filepath, weights_only)


# The fit loop's progress, handed from a `ddp_spawn` worker to the main process.
_LOOP_COUNTERS = ("epoch", "global_step", "batches_that_stepped", "total_batch_idx")


def _identity_transfer(batch: Any, dataloader_idx: int) -> Any:
    return batch


def _dataloader_index(key: str) -> int | None:
    marker = "/dataloader_idx_"
    if marker in key:
        return int(key.rsplit(marker, 1)[1])
    return None


def _legacy_hook(module: Any, legacy: str, replacement: str) -> bool:
    if callable(getattr(module, legacy, None)):
        warn_legacy(f"{type(module).__name__}.{legacy}(self, outputs)",
                    f"{replacement}(self) and keep the step outputs you need on self")
        return True
    return False


def _parse_max_time(max_time: Any) -> float | None:
    if max_time is None:
        return None
    if isinstance(max_time, datetime.timedelta):
        return max_time.total_seconds()
    if isinstance(max_time, dict):
        return datetime.timedelta(**max_time).total_seconds()
    if isinstance(max_time, str):
        try:
            days, hours, minutes, seconds = (int(p) for p in max_time.split(":"))
        except ValueError:
            raise MisconfigurationException(
                f"max_time={max_time!r} is not in 'DD:HH:MM:SS' form, e.g. '00:12:00:00' for 12 hours."
            ) from None
        return datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    raise MisconfigurationException(
        f"max_time={max_time!r} is not understood; use 'DD:HH:MM:SS', a datetime.timedelta or a dict of its fields."
    )


def _validate_val_schedule(interval: int | float, every: int | None) -> None:
    if isinstance(interval, float) and not 0.0 < interval <= 1.0:
        raise MisconfigurationException(
            f"val_check_interval={interval} must be a fraction in (0.0, 1.0] of an epoch or an int number of batches."
        )
    if isinstance(interval, int) and interval < 1:
        raise MisconfigurationException(f"val_check_interval={interval} must be >= 1 batches.")
    if every is not None and every < 1:
        raise MisconfigurationException(f"check_val_every_n_epoch={every} must be >= 1, or None.")
    if every is None and isinstance(interval, float) and interval != 1.0:
        raise MisconfigurationException(
            "check_val_every_n_epoch=None needs an int val_check_interval (a number of batches)."
        )


def _apply_determinism(deterministic: bool | str | None, benchmark: bool | None) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
    if benchmark is None and deterministic:
        benchmark = False
    if benchmark is not None:
        torch.backends.cudnn.benchmark = benchmark


def _make_loggers(logger: Any, root_dir: str) -> list[Logger]:
    if logger is None or logger is True:
        return [CSVLogger(save_dir=root_dir)]
    if logger is False:
        return []
    loggers = list(logger) if isinstance(logger, Iterable) else [logger]
    bad = [type(item).__name__ for item in loggers if not isinstance(item, Logger)]
    if bad:
        raise MisconfigurationException(
            f"logger= got {bad}; pass True, False, a Logger (CSVLogger, TensorBoardLogger) or a list of them."
        )
    return loggers


def _make_callbacks(callbacks: Any, enable_progress_bar: bool, refresh_rate: int | None,
                    enable_model_summary: bool, enable_checkpointing: bool = True,
                    max_time_seconds: float | None = None) -> list[Callback]:
    if callbacks is None:
        callbacks = []
    elif isinstance(callbacks, Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    bad = [type(cb).__name__ for cb in callbacks if not isinstance(cb, Callback)]
    if bad:
        raise MisconfigurationException(f"callbacks= got {bad}, which are not runtime.Callback instances.")
    has_bar = any(isinstance(cb, ProgressBar) for cb in callbacks)
    if has_bar and not enable_progress_bar:
        raise MisconfigurationException(
            "A ProgressBar callback was passed with enable_progress_bar=False; remove one of the two."
        )
    if enable_progress_bar and refresh_rate != 0 and not has_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=refresh_rate or 1))
    if enable_model_summary and not any(isinstance(cb, ModelSummary) for cb in callbacks):
        callbacks.append(ModelSummary())
    has_checkpoint = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    if has_checkpoint and not enable_checkpointing:
        raise MisconfigurationException(
            "Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint` in callbacks list; "
            "remove one of the two."
        )
    if enable_checkpointing and not has_checkpoint:
        callbacks.append(ModelCheckpoint())
    if max_time_seconds is not None:
        if any(isinstance(cb, Timer) for cb in callbacks):
            rank_zero_info("Ignoring `Trainer(max_time=...)`, callbacks list already contains a Timer.")
        else:
            callbacks.append(Timer(duration=datetime.timedelta(seconds=max_time_seconds), interval="step"))
    return _checkpoints_last(callbacks)


def _checkpoints_last(callbacks: list[Callback]) -> list[Callback]:
    """ModelCheckpoints run after the other callbacks, so the state they save includes this step's changes."""
    return ([cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
            + [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)])


def _merge_model_callbacks(callbacks: list[Callback], extra: Any) -> list[Callback]:
    """Callbacks from `configure_callbacks` replace trainer callbacks of the same type."""
    if not extra:
        return callbacks
    extra = [extra] if isinstance(extra, Callback) else list(extra)
    replaced_types = {type(cb) for cb in extra}
    return _checkpoints_last([cb for cb in callbacks if type(cb) not in replaced_types] + extra)


def _print_results_table(stage: str, results: list[dict[str, float]]) -> None:
    rows = [(key, value) for metrics in results for key, value in metrics.items()]
    if not rows:
        return
    title = "Validate metric" if stage == "validate" else "Test metric"
    width = max(len(title), *(len(k) for k, _ in rows))
    rule = "-" * (width + 25)
    lines = [rule, f"{title:<{width}}   DataLoader 0", rule]
    lines += [f"{key:<{width}}   {value:.6g}" for key, value in rows]
    lines.append(rule)
    print("\n".join(lines))
