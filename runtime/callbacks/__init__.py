from runtime.callbacks.callback import Callback
from runtime.callbacks.model_summary import ModelSummary
from runtime.callbacks.progress import ProgressBar, TQDMProgressBar

__all__ = ["Callback", "ModelSummary", "ProgressBar", "TQDMProgressBar"]
