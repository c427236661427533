"""What one captured run of a script produced, and what it was asked to do.

The parent (`migrate.verify`) and the child process (`migrate.capture`) share these types
so the file they exchange has one definition. Standard library only: the parent must not
pay for importing torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CaptureRequest:
    """How the child runs a script: as `python script.py *argv` would, plus the capture."""

    script: str
    argv: tuple[str, ...]
    import_dir: str
    steps: int
    seed: int
    fake_data: bool
    result_path: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> CaptureRequest:
        fields = json.loads(path.read_text())
        return cls(**{**fields, "argv": tuple(fields["argv"])})


@dataclass(frozen=True)
class Trajectory:
    """The losses one script produced, and the weights it started from.

    `weights` holds one `"dtype shape sha256"` entry per leaf tensor that required grad at
    the first backward call, sorted, so two runs compare as multisets whatever order the
    autograd graph is walked in.
    """

    losses: tuple[float, ...]
    weights: tuple[str, ...]
    param_count: int
    finished_early: bool
    error: str | None = field(default=None)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> Trajectory:
        fields = json.loads(path.read_text())
        return cls(
            **{**fields, "losses": tuple(fields["losses"]), "weights": tuple(fields["weights"])}
        )

    @classmethod
    def failed(cls, error: str) -> Trajectory:
        return cls(losses=(), weights=(), param_count=0, finished_early=True, error=error)
