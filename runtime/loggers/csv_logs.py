"""CSVLogger: metrics.csv and hparams.yaml, with nothing beyond the standard library."""

from __future__ import annotations

import argparse
import csv
import io
import os
from typing import Any

from runtime.loggers.logger import (
    _VersionedDirLogger,
    add_prefix,
    as_python_scalar,
    params_as_dict,
    rank_zero_experiment,
    save_hparams_to_yaml,
)
from runtime.rank_zero import rank_zero_only, rank_zero_warn


class ExperimentWriter:
    """Writes metrics.csv and hparams.yaml for one version directory.

    Rows are buffered and appended in batches, so logging does not open a file per call.
    The last row on disk stays open for merging: metrics logged later at the same step
    (epoch-end and validation metrics usually are) rewrite just that row in place. A key
    first seen after rows were written widens the header by rewriting the file once.
    """

    NAME_METRICS_FILE = "metrics.csv"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.hparams: dict[str, Any] = {}
        self.metrics: list[dict[str, Any]] = []
        self.metrics_keys: list[str] = ["step"]
        self._known_keys = {"step"}
        self._hparams_written = False
        self._rows_logged = 0
        self._header_on_disk: list[str] = []
        self._last_row_on_disk: dict[str, Any] | None = None
        self._last_row_offset = 0
        self._end_offset = 0
        self._remove_previous_metrics()
        os.makedirs(log_dir, exist_ok=True)

    def _remove_previous_metrics(self) -> None:
        """A reused version directory gets this run's metrics only, as in Lightning."""
        if os.path.isdir(self.log_dir) and os.listdir(self.log_dir):
            rank_zero_warn(
                f"Experiment logs directory {self.log_dir} exists and is not empty."
                f" Its {self.NAME_METRICS_FILE} is replaced by this run's."
            )
            if os.path.isfile(self.metrics_file_path):
                os.remove(self.metrics_file_path)

    def log_metrics(
        self, metrics_dict: dict[str, Any], step: int | None = None
    ) -> None:
        if step is None:
            step = self._rows_logged
        metrics = {key: as_python_scalar(value) for key, value in metrics_dict.items()}
        for key in metrics:
            if key not in self._known_keys:
                self._known_keys.add(key)
                self.metrics_keys.append(key)
        previous = self.metrics[-1] if self.metrics else self._last_row_on_disk
        if (
            previous is not None
            and previous["step"] == step
            and previous.keys().isdisjoint(metrics)
        ):
            previous.update(metrics)
            if previous is self._last_row_on_disk:
                self.metrics.append(previous)
                self._last_row_on_disk = None
                self._end_offset = self._last_row_offset
        else:
            self.metrics.append({"step": step, **metrics})
            self._rows_logged += 1

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        save_hparams_to_yaml(
            os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams
        )
        self._hparams_written = True

    def save(self) -> None:
        """Write the buffered rows, and an empty hparams.yaml if none was logged
        (Lightning leaves one in every run directory)."""
        if not self._hparams_written:
            self.log_hparams({})
        if not self.metrics:
            return
        if self._header_on_disk == self.metrics_keys:
            rows, start, mode = self.metrics, self._end_offset, "r+b"
        else:
            rows, start, mode = self._rows_on_disk() + self.metrics, 0, "wb"
        head = self._encode(rows[:-1], with_header=start == 0)
        last = self._encode(rows[-1:])
        with open(self.metrics_file_path, mode) as file:
            file.seek(start)
            file.truncate()
            file.write(head)
            self._last_row_offset = file.tell()
            file.write(last)
            self._end_offset = file.tell()
        self._header_on_disk = list(self.metrics_keys)
        self._last_row_on_disk = rows[-1]
        self.metrics = []

    def _rows_on_disk(self) -> list[dict[str, str]]:
        if not self._end_offset:
            return []
        with open(self.metrics_file_path, "rb") as file:
            text = file.read(self._end_offset).decode("utf-8")
        return list(csv.DictReader(io.StringIO(text)))

    def _encode(self, rows: list[dict[str, Any]], with_header: bool = False) -> bytes:
        """Format rows in memory so file offsets are exact byte positions."""
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=self.metrics_keys, lineterminator="\n"
        )
        if with_header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode("utf-8")


class CSVLogger(_VersionedDirLogger):
    """Log to ``<save_dir>/<name>/version_<N>/metrics.csv`` (Lightning's ``CSVLogger``).

    Rows reach the file when ``step + 1`` is a multiple of ``flush_logs_every_n_steps``
    (Lightning's rule), at the latest after that many buffered rows, and on ``save()``
    and ``finalize()``.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(save_dir, name=name, version=version, prefix=prefix)
        self._flush_logs_every_n_steps = flush_logs_every_n_steps

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = ExperimentWriter(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        experiment = self.experiment
        experiment.log_metrics(metrics, step)
        flush_every = self._flush_logs_every_n_steps
        if (step is not None and (step + 1) % flush_every == 0) or len(
            experiment.metrics
        ) >= flush_every:
            self.save()

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | argparse.Namespace, *args: Any, **kwargs: Any
    ) -> None:
        self.experiment.log_hparams(params_as_dict(params))

    @rank_zero_only
    def save(self) -> None:
        if self._experiment is not None:
            self._experiment.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
