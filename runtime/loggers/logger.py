"""The logger interface the trainer talks to, and what file-based loggers share."""

from __future__ import annotations

import argparse
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Callable

from runtime.rank_zero import rank_zero_only


class Logger(ABC):
    """Lightning 2.x logger interface.

    Only ``name``, ``version``, ``log_metrics`` and ``log_hyperparams`` are abstract, as
    in Lightning, so custom loggers written for Lightning subclass this one unchanged.
    """

    @property
    @abstractmethod
    def name(self) -> str | None:
        """Experiment name; the directory level between ``save_dir`` and the version."""

    @property
    @abstractmethod
    def version(self) -> int | str | None:
        """An int becomes the directory ``version_<N>``; a str is the directory."""

    @property
    def root_dir(self) -> str | None:
        return None

    @property
    def log_dir(self) -> str | None:
        return None

    @property
    def save_dir(self) -> str | None:
        return None

    @property
    def experiment(self) -> Any:
        return None

    @property
    def group_separator(self) -> str:
        return "/"

    @abstractmethod
    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None
    ) -> None: ...

    @abstractmethod
    def log_hyperparams(
        self, params: dict[str, Any] | argparse.Namespace, *args: Any, **kwargs: Any
    ) -> None: ...

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Loggers that can draw the model graph override this; the rest ignore it."""

    def save(self) -> None:
        """Persist whatever is buffered; called by the trainer after logging."""

    def finalize(self, status: str) -> None:
        """Called once when training ends, with "success", "failed" or "finished"."""
        self.save()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """For loggers that upload checkpoints; local loggers have nothing to do."""


class _DummyExperiment:
    """Stands in for the experiment on ranks other than zero, so user code such as
    ``self.logger.experiment.add_image(...)`` needs no rank check."""

    def _nop(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):  # keep copy/pickle protocols working
            raise AttributeError(name)
        return self._nop

    def __getitem__(self, _: Any) -> _DummyExperiment:
        return self

    def __setitem__(self, *_: Any) -> None:
        pass


def rank_zero_experiment(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Create the real experiment on rank 0 only; other ranks must not touch disk."""
    return rank_zero_only(fn, default=_DummyExperiment())


class _VersionedDirLogger(Logger):
    """A logger writing under ``<save_dir>/<name>/<version>``, numbered as in Lightning.

    Nothing touches the disk until the experiment is first used, so constructing a
    logger (or reading its ``log_dir``) leaves no empty directories behind.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
    ) -> None:
        super().__init__()
        self._save_dir = os.path.expanduser(os.fspath(save_dir))
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._experiment: Any = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        """Fixed on first access, so later ``log_dir`` calls name the same directory."""
        if self._version is None:
            self._version = next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self.save_dir, self.name) if self.name else self.save_dir

    @property
    def log_dir(self) -> str:
        version = self.version
        return os.path.join(
            self.root_dir, version if isinstance(version, str) else f"version_{version}"
        )


def next_version(root_dir: str) -> int:
    """One past the highest existing ``version_<N>`` directory (gaps are not reused)."""
    try:
        entries = os.scandir(root_dir)
    except OSError:
        return 0
    with entries:
        versions = [
            int(entry.name[len("version_") :])
            for entry in entries
            if entry.is_dir()
            and entry.name.startswith("version_")
            and entry.name[len("version_") :].isdigit()
        ]
    return max(versions) + 1 if versions else 0


def add_prefix(
    metrics: Mapping[str, Any], prefix: str, separator: str
) -> dict[str, Any]:
    """Namespace metric keys for ``prefix=`` (``"fit"`` -> ``"fit-loss"``)."""
    if not prefix:
        return dict(metrics)
    return {f"{prefix}{separator}{key}": value for key, value in metrics.items()}


def as_python_scalar(value: Any) -> Any:
    """Turn 0-d tensors and numpy scalars into Python numbers for writing.

    Duck-typed on ``.item()`` so this module needs neither torch nor numpy. Call it only
    at log time: on an accelerator ``.item()`` waits for the device.
    """
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, Mapping) else value


def params_as_dict(
    params: Mapping[str, Any] | argparse.Namespace | None,
) -> dict[str, Any]:
    """Accept hyperparameters in every form Lightning does: dict, Namespace or None."""
    if params is None:
        return {}
    if isinstance(params, argparse.Namespace):
        return vars(params).copy()
    return dict(params)


def flatten_dict(
    params: Mapping[str, Any], delimiter: str = "/", parent_key: str = ""
) -> dict[str, Any]:
    """Flatten nested hyperparameters (``{"a": {"b": 1}}`` -> ``{"a/b": 1}``) for
    backends such as TensorBoard's HPARAMS tab that only take flat key/value pairs."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        full_key = f"{parent_key}{delimiter}{key}" if parent_key else str(key)
        if isinstance(value, argparse.Namespace):
            value = vars(value)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_dict(value, delimiter, full_key))
        else:
            flat[full_key] = value
    return flat


def to_plain(value: Any) -> Any:
    """Reduce hyperparameters to YAML's plain types so hparams.yaml loads with
    ``yaml.safe_load`` and never needs to run code; anything else becomes ``str()``.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {
            key if type(key) in (bool, int, float, str) else str(key): to_plain(v)
            for key, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_plain(tolist())
    return str(value)


def save_hparams_to_yaml(path: str, hparams: Mapping[str, Any]) -> None:
    """Write hparams.yaml; without PyYAML write JSON, which is valid YAML, so readers
    (``yaml.safe_load``, Lightning's ``hparams_file=``) see the same data either way."""
    plain = to_plain(dict(hparams))
    try:
        import yaml
    except ImportError:
        import json

        text = json.dumps(plain, indent=2) + "\n"
    else:
        text = yaml.safe_dump(plain, sort_keys=False)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
