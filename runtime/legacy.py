"""Lightning 1.x spellings from older scripts, accepted with a warning that names the 2.x form."""

from __future__ import annotations

import difflib
import warnings
from typing import Any


class LegacyAPIWarning(DeprecationWarning):
    """Shown (not filtered) for 1.x API: the message names the replacement."""


warnings.simplefilter("always", LegacyAPIWarning)


def warn_legacy(old: str, new: str) -> None:
    warnings.warn(f"`{old}` is Lightning 1.x API; use `{new}` instead.", LegacyAPIWarning, stacklevel=4)


def translate_trainer_kwargs(legacy: dict[str, Any], valid_names: list[str]) -> dict[str, Any]:
    """Map removed Trainer arguments to their 2.x equivalents; unknown names raise with a suggestion."""
    translated: dict[str, Any] = {}
    for name, value in legacy.items():
        if name == "gpus":
            if value in (None, 0, "0", [], ""):
                warn_legacy(f"Trainer(gpus={value!r})", "Trainer(accelerator='cpu')")
                translated["accelerator"] = "cpu"
            else:
                warn_legacy(f"Trainer(gpus={value!r})", f"Trainer(accelerator='gpu', devices={value!r})")
                translated["accelerator"] = "gpu"
                translated["devices"] = value
        elif name == "progress_bar_refresh_rate":
            warn_legacy(f"Trainer(progress_bar_refresh_rate={value!r})",
                        f"Trainer(callbacks=[TQDMProgressBar(refresh_rate={value!r})])")
            translated["_progress_bar_refresh_rate"] = value
        elif name == "resume_from_checkpoint":
            warn_legacy("Trainer(resume_from_checkpoint=path)", "trainer.fit(model, ckpt_path=path)")
            translated["_resume_from_checkpoint"] = value
        elif name == "weights_summary":
            warn_legacy(f"Trainer(weights_summary={value!r})", "Trainer(enable_model_summary=...)")
            translated["enable_model_summary"] = value is not None
        elif name == "checkpoint_callback":
            warn_legacy(f"Trainer(checkpoint_callback={value!r})", f"Trainer(enable_checkpointing={value!r})")
            translated["enable_checkpointing"] = bool(value)
        else:
            close = difflib.get_close_matches(name, valid_names, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise TypeError(f"Trainer got an unexpected argument `{name}`.{hint}")
    return translated
