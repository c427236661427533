"""The conversion core as a library function: source text in, unformatted converted text out."""

from __future__ import annotations

import libcst as cst

from migrate.analysis import analyse, is_lightning_source
from migrate.findings import ConversionResult, Status
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
    converted = rewrite(module, plan, target)
    # A helper called twice (validation and test) is analysed twice: report each finding once.
    unique = {(f.line, f.col, f.code, f.message): f for f in plan.findings}
    findings = sorted(unique.values(), key=lambda f: (f.line, f.col, f.code, f.message))
    return ConversionResult(path=path, status=Status.CONVERTED, output=converted, findings=findings)
