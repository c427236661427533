"""TensorBoardLogger: TensorBoard event files, importing tensorboard only when used."""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from runtime.loggers.logger import (
    _VersionedDirLogger,
    add_prefix,
    as_python_scalar,
    flatten_dict,
    params_as_dict,
    rank_zero_experiment,
    save_hparams_to_yaml,
    to_plain,
)
from runtime.rank_zero import rank_zero_only, rank_zero_warn

TENSORBOARD_MISSING = (
    "TensorBoardLogger needs the 'tensorboard' package: "
    'pip install "torch-migrate[tensorboard]" (or use CSVLogger, the default).'
)


class TensorBoardLogger(_VersionedDirLogger):
    """Log to ``<save_dir>/<name>/version_<N>[/<sub_dir>]`` in TensorBoard format
    (Lightning's ``TensorBoardLogger``).

    Importing tensorboard costs about a second, so it happens on first use of
    ``experiment``, not at import or construction. Extra ``kwargs`` go to
    ``SummaryWriter``.
    """

    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(
        self,
        save_dir: str | os.PathLike,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise ModuleNotFoundError(TENSORBOARD_MISSING)
        super().__init__(save_dir, name=name, version=version, prefix=prefix)
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._sub_dir = (
            None if sub_dir is None else os.path.expanduser(os.fspath(sub_dir))
        )
        self._kwargs = kwargs
        self.hparams: dict[str, Any] = {}
        self._hparams_written = False

    @property
    def log_dir(self) -> str:
        log_dir = super().log_dir
        if self._sub_dir:
            log_dir = os.path.join(log_dir, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(log_dir))

    @property
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``torch.utils.tensorboard.SummaryWriter``; creates the log directory."""
        if self._experiment is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ModuleNotFoundError(TENSORBOARD_MISSING) from error
            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        experiment = self.experiment
        for key, value in add_prefix(
            metrics, self._prefix, self.LOGGER_JOIN_CHAR
        ).items():
            value = as_python_scalar(value)
            if isinstance(value, Mapping):
                experiment.add_scalars(
                    key, {k: as_python_scalar(v) for k, v in value.items()}, step
                )
                continue
            try:
                experiment.add_scalar(key, value, step)
            except Exception as error:
                raise ValueError(
                    f"Cannot log {key}={value!r} to TensorBoard: log a number,"
                    " a 0-d tensor, or a dict of them."
                ) from error

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | argparse.Namespace,
        metrics: dict[str, Any] | float | None = None,
    ) -> None:
        """Save hparams.yaml and fill TensorBoard's HPARAMS tab.

        The tab only lists runs that have a metric, hence Lightning's placeholder
        ``hp_metric=-1`` when ``default_hp_metric`` is on and no metric is given.
        """
        self.hparams.update(params_as_dict(params))
        self._save_hparams()
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else {}
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if not metrics:
            return
        self.log_metrics(metrics, 0)
        from torch.utils.tensorboard.summary import hparams

        writer = self.experiment._get_file_writer()
        for summary in hparams(_hparams_for_tensorboard(self.hparams), dict(metrics)):
            writer.add_summary(summary)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        if not self._log_graph:
            return
        if input_array is None:
            input_array = getattr(model, "example_input_array", None)
        if input_array is None:
            rank_zero_warn(
                "Could not log computational graph to TensorBoard: set"
                " `model.example_input_array` or pass `input_array`."
            )
            return
        device = next((parameter.device for parameter in model.parameters()), None)
        if device is not None:
            input_array = _to_device(input_array, device)
        self.experiment.add_graph(model, input_array)

    @rank_zero_only
    def save(self) -> None:
        """Leave an hparams.yaml in the log directory even when none were logged,
        as Lightning does."""
        if not self._hparams_written and os.path.isdir(self.log_dir):
            self._save_hparams()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
        if status == "success":
            self.save()

    def _save_hparams(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        save_hparams_to_yaml(
            os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams
        )
        self._hparams_written = True

    def __getstate__(self) -> dict[str, Any]:
        """Drop the open writer so the logger pickles (spawned workers, checkpoints)."""
        state = self.__dict__.copy()
        state["_experiment"] = None
        return state


def _hparams_for_tensorboard(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The HPARAMS tab takes flat numbers, strings and bools; the rest show as text."""
    return {
        key: value if type(value) in (bool, int, float, str) else str(value)
        for key, value in flatten_dict(to_plain(hparams)).items()
    }


def _to_device(value: Any, device: Any) -> Any:
    """Tracing runs the model, so the example input must sit on the model's device."""
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    if isinstance(value, Mapping):
        return {key: _to_device(item, device) for key, item in value.items()}
    return value.to(device) if hasattr(value, "to") else value
