"""Conversion with the guarantees the user relies on: never a traceback, never broken code.

`migrate.convert.convert_code` does the rewriting. Around it, this module turns everything
that can go wrong with an input (unreadable, not UTF-8, too large, a syntax error) into a
finding, and checks each output before anyone may write it: it must compile, and once
formatted with black, converting it again must change nothing, since users re-run the
tool over trees that already hold converted files.

Codes of the findings raised here (MIG9xx, error level unless noted):
- MIG901 syntax error in the input, at its line and column;
- MIG902 the input is not UTF-8;
- MIG903 the input is empty (warning: there is nothing to convert, which is no failure);
- MIG904 the input is larger than `MAX_BYTES`;
- MIG905 the input cannot be read;
- MIG906 the converted output is not valid Python (a converter bug);
- MIG907 converting the output again changes it (a converter bug);
- MIG908 the converter (or black) crashed (a bug);
- MIG909 the output cannot be written (raised by `migrate.convert_run`, which writes).
MIG901, MIG902, MIG904 and MIG905 are `INPUT_ERRORS`: the file is at fault, not the converter.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import black
import libcst

from migrate.convert import convert_code
from migrate.findings import ConversionResult, Finding, Severity, Status

MAX_BYTES = 5 * 1024 * 1024
INPUT_ERRORS = frozenset({"MIG901", "MIG902", "MIG904", "MIG905"})


def convert_source(
    source: str, path: str = "<stdin>", target: str = "runtime", format: bool = True
) -> ConversionResult:
    """Converts `source` and checks the result; `output` is set only when it passed."""
    syntax_error = _syntax_error(source, path)
    if syntax_error is not None:
        return _failed(path, syntax_error)
    try:
        result = _convert(source, path, target)
        if result.status is not Status.CONVERTED:
            return result
        output = _checked(result.output, path, target, format)
    except _Rejected as rejected:
        return ConversionResult(path, Status.FAILED, None, [*result.findings, rejected.finding])
    except _Unusable as unusable:
        return _failed(path, unusable.finding)
    return ConversionResult(path, Status.CONVERTED, output, result.findings)


def convert_bytes(
    data: bytes, path: str = "<stdin>", target: str = "runtime", format: bool = True
) -> ConversionResult:
    """Like `convert_source`, for raw file contents that may not be text at all."""
    if len(data) > MAX_BYTES:
        return _failed(path, _too_large(path, len(data)))
    if not data.strip():
        empty = Finding(path, 1, 1, "MIG903", Severity.WARNING, "empty file, nothing to convert")
        return ConversionResult(path, Status.NO_TRAINING_LOOP, None, [empty])
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return _failed(path, _not_utf8(data, error, path))
    return convert_source(source, path, target, format)


def convert_file(path: Path, target: str = "runtime", format: bool = True) -> ConversionResult:
    """Like `convert_bytes`; a huge file is refused before it is read into memory."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return _failed(name, _too_large(name, size))
        data = path.read_bytes()
    except OSError as error:
        message = f"cannot read the file: {error.strerror or error}"
        return _failed(name, Finding(name, 1, 1, "MIG905", Severity.ERROR, message))
    return convert_bytes(data, name, target, format)


def convert_files(
    paths: Sequence[Path], target: str = "runtime", format: bool = True, jobs: int = 1
) -> Iterator[ConversionResult]:
    """`convert_file` over `paths` with up to `jobs` processes, yielding results in order."""
    convert = functools.partial(convert_file, target=target, format=format)
    if jobs == 1 or len(paths) < 2:
        yield from map(convert, paths)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        yield from pool.map(convert, paths)


class _Unusable(Exception):
    """The input cannot be converted; `finding` says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


class _Rejected(_Unusable):
    """The converter produced an output that must not be written; `finding` says why."""


def _convert(source: str, path: str, target: str) -> ConversionResult:
    """`convert_code` on text that compiles, so a libcst parse error is libcst's limit."""
    try:
        return convert_code(source, path, target)
    except libcst.ParserSyntaxError as error:
        message = f"libcst cannot parse this code: {error.message}"
        line, col = error.editor_line, error.editor_column
        raise _Unusable(Finding(path, line, col, "MIG901", Severity.ERROR, message)) from error
    except Exception as error:  # noqa: BLE001 - one file's crash must not stop the run
        raise _Unusable(_crash("the converter", error, path)) from error


def _checked(output: str, path: str, target: str, format: bool) -> str:
    """The text to write: `output`, formatted, once it compiles and converts to itself."""
    invalid = _syntax_error(output, path)
    if invalid is not None:
        raise _Rejected(_invalid_output(path, f"line {invalid.line}: {invalid.message}"))
    if format:
        output = _format(output, path)
    try:
        again = _convert(output, path, target)
    except _Unusable as unusable:
        finding = unusable.finding
        if finding.code == "MIG901":
            finding = _invalid_output(path, finding.message)
        raise _Rejected(finding) from unusable
    if again.status in (Status.UNCHANGED, Status.NO_TRAINING_LOOP):
        return output
    if again.status is Status.CONVERTED:
        reconverted = _format(again.output, path) if format else again.output
        if reconverted == output:
            return output
    line = _first_difference(output, again.output or "")
    message = (
        f"converting the output again changes its line {line}, so it was not written "
        "(a converter bug: please report it with this file)"
    )
    raise _Rejected(Finding(path, 1, 1, "MIG907", Severity.ERROR, message))


def _format(code: str, path: str) -> str:
    try:
        return black.format_str(code, mode=black.Mode())
    except Exception as error:  # noqa: BLE001 - black's failure must not stop the run
        raise _Rejected(_crash("black (use --no-format to skip it)", error, path)) from error


def _syntax_error(source: str, path: str) -> Finding | None:
    """CPython's verdict first: its positions and messages are better than libcst's."""
    try:
        compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:  # ValueError: a null byte, on older Pythons
        line = getattr(error, "lineno", None) or 1
        col = getattr(error, "offset", None) or 1
        message = f"syntax error: {getattr(error, 'msg', error)}"
        return Finding(path, line, col, "MIG901", Severity.ERROR, message)
    return None


def _not_utf8(data: bytes, error: UnicodeDecodeError, path: str) -> Finding:
    line = data.count(b"\n", 0, error.start) + 1
    col = error.start - data.rfind(b"\n", 0, error.start)
    message = (
        f"not UTF-8 (byte 0x{data[error.start]:02x} cannot be decoded); "
        "save the file as UTF-8 and convert it again"
    )
    return Finding(path, line, col, "MIG902", Severity.ERROR, message)


def _too_large(path: str, size: int) -> Finding:
    message = (
        f"file too large to convert ({size / 2**20:.1f} MiB; the limit is "
        f"{MAX_BYTES / 2**20:.0f} MiB), so it is probably not a training script"
    )
    return Finding(path, 1, 1, "MIG904", Severity.ERROR, message)


def _invalid_output(path: str, detail: str) -> Finding:
    message = (
        f"the converted code is not valid Python ({detail}), so it was not written "
        "(a converter bug: please report it with this file)"
    )
    return Finding(path, 1, 1, "MIG906", Severity.ERROR, message)


def _crash(culprit: str, error: Exception, path: str) -> Finding:
    message = (
        f"{culprit} crashed ({type(error).__name__}: {error}), so nothing was written "
        "(a bug: please report it with this file)"
    )
    return Finding(path, 1, 1, "MIG908", Severity.ERROR, message)


def _first_difference(before: str, after: str) -> int:
    for number, (old, new) in enumerate(zip(before.splitlines(), after.splitlines()), start=1):
        if old != new:
            return number
    return min(len(before.splitlines()), len(after.splitlines())) + 1


def _failed(path: str, finding: Finding) -> ConversionResult:
    return ConversionResult(path, Status.FAILED, None, [finding])
