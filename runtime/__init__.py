"""A fast trainer with the `lightning.pytorch` API: change one import to move between them."""

import logging as _logging
import sys as _sys

from runtime.callbacks import Callback
from runtime.datamodule import LightningDataModule
from runtime.ddp import DDPStrategy
from runtime.exceptions import MisconfigurationException
from runtime.module import LightningModule
from runtime.rank_zero import rank_zero_only
from runtime.seed import seed_everything
from runtime.trainer import Trainer

__version__ = "0.1.0"



class _CurrentStdoutHandler(_logging.StreamHandler):
    """Writes to whatever sys.stdout is at emit time, so redirections (and pytest's capture) see it."""

    @property
    def stream(self):  # type: ignore[override]
        return _sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


_log = _logging.getLogger(__name__)
if not _log.handlers:
    # Like lightning.pytorch: run information (model summary, notices) reaches stdout by default.
    _log.setLevel(_logging.INFO)
    _log.addHandler(_CurrentStdoutHandler())
    _log.propagate = False

__all__ = [
    "Callback",
    "DDPStrategy",
    "LightningDataModule",
    "LightningModule",
    "MisconfigurationException",
    "Trainer",
    "rank_zero_only",
    "seed_everything",
]
