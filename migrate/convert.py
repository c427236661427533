"""The conversion core as a library function: source text in, unformatted converted text out."""

from __future__ import annotations

import libcst as cst

from migrate.analysis import analyse, is_lightning_source
from migrate.findings import ConversionResult, Finding, Severity, Status
from migrate.rewrite import rewrite


def convert_code(source: str, path: str = "<stdin>", target: str = "runtime") -> ConversionResult:
    """Parses (raising libcst.ParserSyntaxError on bad input), analyses and rewrites one script."""
    try:
        converted_already = is_lightning_source(source)
    except (SyntaxError, ValueError):
        converted_already = False  # libcst's parse below reports it
    if converted_already:
        return ConversionResult(path=path, status=Status.UNCHANGED, output=source)
    module = cst.parse_module(source)
    plan = analyse(module, path, source)
    if plan is None:
        return ConversionResult(path=path, status=Status.NO_TRAINING_LOOP, output=None)
    if not any(step.stage == "train" for step in plan.steps):
        return _left_as_it_was(source, path, plan)
    converted = rewrite(module, plan, target)
    return ConversionResult(path=path, status=Status.CONVERTED, output=converted, findings=_unique(plan.findings))


def _unique(findings: list[Finding]) -> list[Finding]:
    """A helper called twice (validation and test) is analysed twice: each finding once, in order."""
    unique = {(f.line, f.col, f.code, f.message): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.line, f.col, f.code, f.message))


def _left_as_it_was(source: str, path: str, plan) -> ConversionResult:
    """An epoch loop whose batch loop could not be read (a range over sequence positions, say):
    a LightningModule without a training_step would not run, so the file stays as it was."""
    loop = next((f for f in plan.findings if f.code in ("MIG106", "MIG148")), None)
    line, col = (loop.line, loop.col) if loop else (1, 1)
    findings = [f for f in plan.findings if f.severity is Severity.NOT_CONVERTED]  # nothing else happened
    finding = Finding(
        path, line, col, "MIG303", Severity.NOT_CONVERTED,
        "not converted: the epoch loop's batch loop could not be read as a training_step "
        "(see the findings above); the file is left as it was",
    )
    return ConversionResult(path=path, status=Status.UNCHANGED, output=source, findings=_unique([*findings, finding]))
