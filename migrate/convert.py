"""The conversion core as a library function: source text in, unformatted converted text out."""

from __future__ import annotations

import libcst as cst

from migrate.analysis import analyse, is_lightning_form
from migrate.findings import ConversionResult, Status
from migrate.rewrite import rewrite


def convert_code(source: str, path: str = "<stdin>", target: str = "runtime") -> ConversionResult:
    """Parses (raising libcst.ParserSyntaxError on bad input), analyses and rewrites one script."""
    module = cst.parse_module(source)
    if is_lightning_form(module):
        return ConversionResult(path=path, status=Status.UNCHANGED, output=source)
    plan = analyse(module, path)
    if plan is None:
        return ConversionResult(path=path, status=Status.NO_TRAINING_LOOP, output=None)
    converted = rewrite(module, plan, target)
    findings = sorted(plan.findings, key=lambda f: (f.line, f.col, f.code))
    return ConversionResult(path=path, status=Status.CONVERTED, output=converted.code, findings=findings)
