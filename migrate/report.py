"""What a `migrate convert` run tells the user: text for the terminal, JSON for tools.

Both views come from the same outcomes, so `--report` never disagrees with the screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import click

from migrate.engine import INPUT_ERRORS
from migrate.findings import ConversionResult, Finding, Severity, Status

EXIT_OK = 0
EXIT_CHANGES_OR_ERRORS = 1
EXIT_USAGE_OR_INPUT = 2

_SEVERITY_COLOURS = {
    Severity.WARNING: "yellow",
    Severity.NOT_CONVERTED: "magenta",
    Severity.ERROR: "red",
}


@dataclass(frozen=True)
class Outcome:
    """A file's conversion and where its output went (None: nothing was written)."""

    result: ConversionResult
    written_to: str | None = None


def finding_line(finding: Finding) -> str:
    """`path:line:col: MIGnnn message`, the code coloured by severity on a terminal."""
    location = f"{finding.path}:{finding.line}:{finding.col}:"
    code = click.style(finding.code, fg=_SEVERITY_COLOURS.get(finding.severity), bold=True)
    return f"{location} {code} {finding.message}"


def summary(outcomes: Sequence[Outcome], check: bool) -> dict[str, object]:
    """Counts of files by status and of findings by severity, and the run's exit code."""
    statuses = Counter(outcome.result.status for outcome in outcomes)
    severities = Counter(finding.severity for finding in _findings(outcomes))
    return {
        "files": len(outcomes),
        **{status.value: statuses[status] for status in Status},
        "findings": {severity.value: severities[severity] for severity in Severity},
        "exit_code": exit_code(outcomes, check),
    }


def summary_line(counts: dict[str, object], written: bool) -> str:
    """One line for the end of the output, e.g. `3 files: 2 converted, 0 unchanged, ...`."""
    converted = "converted" if written else "to convert"
    files = (
        f"{counts['files']} file{'s' if counts['files'] != 1 else ''}: "
        f"{counts[Status.CONVERTED.value]} {converted}, "
        f"{counts[Status.UNCHANGED.value]} unchanged, "
        f"{counts[Status.NO_TRAINING_LOOP.value]} without a training loop, "
        f"{counts[Status.FAILED.value]} failed"
    )
    by_severity = counts["findings"]
    findings = ", ".join(f"{by_severity[severity.value]} {severity.value}" for severity in Severity)
    colour = "red" if counts["exit_code"] != EXIT_OK else "green"
    return click.style(f"{files}; findings: {findings}", fg=colour)


def report_json(outcomes: Sequence[Outcome], check: bool) -> dict[str, object]:
    """The `--report` document: every finding, every file's status, the summary."""
    return {
        "findings": [finding.as_json() for finding in _findings(outcomes)],
        "files": [
            {
                "path": outcome.result.path,
                "status": outcome.result.status.value,
                "output": outcome.written_to,
            }
            for outcome in outcomes
        ],
        "summary": summary(outcomes, check),
    }


def exit_code(outcomes: Sequence[Outcome], check: bool) -> int:
    """2 for a bad input, else 1 for pending changes under --check or an error finding, else 0."""
    findings = _findings(outcomes)
    if any(finding.code in INPUT_ERRORS for finding in findings):
        return EXIT_USAGE_OR_INPUT
    pending = check and any(o.result.status is Status.CONVERTED for o in outcomes)
    if pending or any(finding.severity is Severity.ERROR for finding in findings):
        return EXIT_CHANGES_OR_ERRORS
    return EXIT_OK


def _findings(outcomes: Sequence[Outcome]) -> list[Finding]:
    return [finding for outcome in outcomes for finding in outcome.result.findings]
