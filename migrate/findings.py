"""What the converter tells the user: findings with stable codes, and a conversion's outcome.

Codes are stable API (users grep for them and CI filters on them):
- MIG1xx info: something was converted (e.g. MIG101 converted train loop at train.py:40-58).
- MIG2xx warning: converted, but the user should look (e.g. a changed metric spelling).
- MIG3xx not-converted: left as it was, marked `# migrate: review` in the output.
- MIG9xx error: the file could not be converted at all (syntax error, not UTF-8, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    NOT_CONVERTED = "not-converted"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    code: str
    severity: Severity
    message: str

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class Status(str, Enum):
    CONVERTED = "converted"
    UNCHANGED = "unchanged"  # already in Lightning form (e.g. converting a converted file)
    NO_TRAINING_LOOP = "no-training-loop"
    FAILED = "failed"


@dataclass
class ConversionResult:
    """The outcome for one source text; `output` is None unless status is CONVERTED or UNCHANGED."""

    path: str
    status: Status
    output: str | None
    findings: list[Finding] = field(default_factory=list)
