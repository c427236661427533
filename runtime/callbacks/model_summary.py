"""The parameter table printed at fit start."""

from __future__ import annotations

from typing import Any

import torch

from runtime.callbacks.callback import Callback
from runtime.rank_zero import rank_zero_info


class ModelSummary(Callback):
    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.max_depth != 0:
            rank_zero_info(summarize(pl_module, self.max_depth))


def summarize(module: torch.nn.Module, max_depth: int = 1) -> str:
    rows = [
        (name, type(child).__name__, _count(child.parameters()), "train" if child.training else "eval")
        for name, child in module.named_modules()
        if name and (max_depth < 0 or name.count(".") < max_depth)
    ]
    header = ("", "Name", "Type", "Params", "Mode")
    table = [header] + [(str(i), name, kind, _human(n), mode) for i, (name, kind, n, mode) in enumerate(rows)]
    widths = [max(len(row[col]) for row in table) for col in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    rule = "-" * max(len(line) for line in lines)
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = _count(module.parameters())
    size_mb = sum(p.numel() * p.element_size() for p in module.parameters()) / 1e6
    footer = [
        f"{_human(trainable):<10}Trainable params",
        f"{_human(total - trainable):<10}Non-trainable params",
        f"{_human(total):<10}Total params",
        f"{size_mb:<10.3f}Total estimated model params size (MB)",
    ]
    return "\n".join([lines[0], rule, *lines[1:], rule, *footer])


def _count(parameters: Any) -> int:
    return sum(p.numel() for p in parameters)


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)
