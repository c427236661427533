"""Numerics: fp32 by default, fp64, and autocast mixed precision with a GradScaler for fp16."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from runtime.device_transfer import apply_to_tensors
from runtime.exceptions import MisconfigurationException

_SPELLINGS = {
    "32": "32-true", "32-true": "32-true", 32: "32-true",
    "64": "64-true", "64-true": "64-true", 64: "64-true",
    "16": "16-mixed", "16-mixed": "16-mixed", 16: "16-mixed",
    "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
    "16-true": "16-true", "bf16-true": "bf16-true",
}


def normalise_precision(precision: Any) -> str:
    """Map legacy spellings (16, 32, "bf16") to Lightning 2.x names."""
    try:
        return _SPELLINGS[precision]
    except (KeyError, TypeError):
        raise MisconfigurationException(
            f"precision={precision!r} is not supported; use '32-true', '64-true', '16-mixed', 'bf16-mixed', "
            f"'16-true' or 'bf16-true'."
        ) from None


class Precision:
    """How forward passes, backward and optimizer steps run for one precision setting."""

    name = "32-true"
    scaler: torch.amp.GradScaler | None = None

    _no_context = contextlib.nullcontext()

    def forward_context(self) -> contextlib.AbstractContextManager:
        return self._no_context

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def convert_input(self, batch: Any) -> Any:
        return batch

    def backward(self, loss: torch.Tensor, module: Any, *args: Any, **kwargs: Any) -> None:
        module.backward(loss, *args, **kwargs)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Nothing to unscale without a scaler."""

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any], skip_without_loss: bool = True
    ) -> Any:
        if _calls_closure_once(optimizer):
            result = closure()
            optimizer.step()
            return result
        return optimizer.step(closure=closure)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless."""


class DoublePrecision(Precision):
    name = "64-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.double()

    def convert_input(self, batch: Any) -> Any:
        return apply_to_tensors(batch, lambda t: t.double() if torch.is_floating_point(t) else t)


class HalfTruePrecision(Precision):
    """Whole model and inputs in one low-precision dtype (`16-true`, `bf16-true`)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.name = "16-true" if dtype == torch.float16 else "bf16-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.dtype)

    def convert_input(self, batch: Any) -> Any:
        return apply_to_tensors(batch, lambda t: t.to(self.dtype) if torch.is_floating_point(t) else t)


class MixedPrecision(Precision):
    """Autocast forward passes; fp16 adds a GradScaler, unscaling before clipping and hooks see gradients."""

    def __init__(self, device_type: str, dtype: torch.dtype) -> None:
        self.device_type = device_type
        self.dtype = dtype
        self.name = "16-mixed" if dtype == torch.float16 else "bf16-mixed"
        self.scaler = torch.amp.GradScaler(device_type) if dtype == torch.float16 else None

    def forward_context(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, module: Any, *args: Any, **kwargs: Any) -> None:
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        module.backward(loss, *args, **kwargs)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any], skip_without_loss: bool = True
    ) -> Any:
        """`skip_without_loss`: in automatic optimization a step whose training_step returned None is skipped."""
        if self.scaler is None:
            return super().optimizer_step(optimizer, closure, skip_without_loss)
        closure_result = closure()
        if closure_result is None and skip_without_loss:
            return None
        result = self.scaler.step(optimizer)
        self.scaler.update()
        return result

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def _calls_closure_once(optimizer: torch.optim.Optimizer) -> bool:
    """torch's own optimizers (LBFGS aside) call the closure exactly once, first.

    Calling it ourselves and then `step()` is numerically the same and skips the ~15 us that
    `step(closure=...)` costs per call; other optimizers (LBFGS, SAM-style ones) get the closure.
    """
    kind = type(optimizer)
    return kind.__module__.startswith("torch.optim.") and kind is not torch.optim.LBFGS


def make_precision(precision: Any, device_type: str) -> Precision:
    """Build the plugin, refusing combinations the hardware cannot run and naming the alternative."""
    name = normalise_precision(precision)
    if name == "32-true":
        return Precision()
    if name == "64-true":
        if device_type == "mps":
            raise MisconfigurationException("precision='64-true' is not supported on MPS; use precision='32-true'.")
        return DoublePrecision()
    if name in ("16-true", "bf16-true"):
        return HalfTruePrecision(torch.float16 if name == "16-true" else torch.bfloat16)
    if name == "16-mixed":
        if device_type == "cpu":
            raise MisconfigurationException(
                "precision='16-mixed' needs a GPU (float16 autocast with a GradScaler); on CPU use precision='bf16-mixed'."
            )
        return MixedPrecision(device_type, torch.float16)
    if device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MisconfigurationException(
            "precision='bf16-mixed' is not supported by this GPU; use precision='16-mixed'."
        )
    return MixedPrecision(device_type, torch.bfloat16)
