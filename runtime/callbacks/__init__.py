from runtime.callbacks.accumulation_scheduler import GradientAccumulationScheduler
from runtime.callbacks.callback import Callback
from runtime.callbacks.early_stopping import EarlyStopping
from runtime.callbacks.lr_monitor import LearningRateMonitor
from runtime.callbacks.model_checkpoint import ModelCheckpoint
from runtime.callbacks.model_summary import ModelSummary
from runtime.callbacks.progress import ProgressBar, TQDMProgressBar
from runtime.callbacks.timer import Timer

__all__ = [
    "Callback",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "ProgressBar",
    "TQDMProgressBar",
    "Timer",
]
