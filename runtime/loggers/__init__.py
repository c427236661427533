"""Loggers with Lightning 2.x names; tensorboard loads only once a logger uses it."""

from runtime.loggers.csv_logs import CSVLogger
from runtime.loggers.logger import Logger
from runtime.loggers.tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "TensorBoardLogger"]
