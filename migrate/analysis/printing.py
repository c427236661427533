"""Recognises what a print() shows: (label, expression) pairs, and turns labels into metric names."""

from __future__ import annotations

import re

import libcst as cst

from migrate.analysis.nodes import call_name

_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
_PERCENT_SPEC = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifgeErxXoc%]")
_LABEL = re.compile(r"([A-Za-z][A-Za-z0-9_@ ]*?)[\s:=\-]*$")


_PRINTS = {"print", "tqdm.write", "pbar.write"}
_LOGGERS = {"logging", "log", "logger", "_log", "_logger", "LOG", "LOGGER"}
_LOG_LEVELS = {"info", "debug", "warning"}


def is_print(expr: cst.CSTNode | None) -> bool:
    """`print(...)`, `tqdm.write(...)`, and `logging.info(...)` / `log.info(...)` on the usual logger names."""
    name = call_name(expr)
    if name is None:
        return False
    if name in _PRINTS:
        return True
    base, _, level = name.rpartition(".")
    return base in _LOGGERS and level in _LOG_LEVELS


def _logging_call(expr: cst.Call) -> list[tuple[str, cst.BaseExpression]] | None:
    """`log.info("loss %.4f acc %.3f", loss, acc)`: logging's own %-formatting of later arguments."""
    positional = [arg.value for arg in expr.args if arg.keyword is None and not arg.star]
    if call_name(expr) in _PRINTS or len(positional) < 2:
        return None
    template = _string_value(positional[0])
    if template is None or not _PERCENT_SPEC.search(template):
        return None
    return _split(template, _PERCENT_SPEC, positional[1:])


def _string_value(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.SimpleString):
        try:
            return node.evaluated_value if isinstance(node.evaluated_value, str) else None
        except Exception:  # pragma: no cover - exotic prefixes
            return None
    if isinstance(node, cst.ConcatenatedString):
        left, right = _string_value(node.left), _string_value(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _string_parts(node: cst.CSTNode) -> list[str | cst.BaseExpression] | None:
    """The literal text and the formatted expressions of a string, in order; implicit
    concatenation (`f"a={a} " f"b={b}"`) joins its pieces. None for anything but a string."""
    if isinstance(node, cst.FormattedString):
        return [part.value if isinstance(part, cst.FormattedStringText) else part.expression
                for part in node.parts if isinstance(part, (cst.FormattedStringText, cst.FormattedStringExpression))]
    if isinstance(node, cst.ConcatenatedString):
        left, right = _string_parts(node.left), _string_parts(node.right)
        return left + right if left is not None and right is not None else None
    value = _string_value(node)
    return [value] if value is not None else None


def _fstring_pieces(node: cst.FormattedString | cst.ConcatenatedString) -> list[tuple[str, cst.BaseExpression]]:
    text, pieces = "", []
    for part in _string_parts(node) or []:
        if isinstance(part, str):
            text += part
        else:
            pieces.append((text, part))
            text = ""
    return pieces


def _split(template: str, pattern: re.Pattern[str], values: list[cst.BaseExpression]):
    texts = pattern.split(template)
    return [(texts[i], value) for i, value in enumerate(values) if i < len(texts)]


def pieces(expr: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    """The (preceding text, value) pairs a print call or formatted string shows."""
    if isinstance(expr, cst.FormattedString) or (
        isinstance(expr, cst.ConcatenatedString) and _string_value(expr) is None and _string_parts(expr)
    ):
        return _fstring_pieces(expr)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Modulo):
        template = _string_value(expr.left)
        if template is not None:
            right = expr.right
            values = (
                [el.value for el in right.elements] if isinstance(right, cst.Tuple) else [right]
            )
            return _split(template, _PERCENT_SPEC, values)
    if (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "format"
    ):
        template = _string_value(expr.func.value)
        if template is not None:
            values = [arg.value for arg in expr.args if arg.keyword is None and arg.star == ""]
            return _split(template, _FORMAT_FIELD, values)
    if isinstance(expr, cst.Call) and is_print(expr):
        logged = _logging_call(expr)
        if logged is not None:
            return logged
        out: list[tuple[str, cst.BaseExpression]] = []
        text = ""
        for arg in expr.args:
            if arg.keyword is not None:
                continue
            value = _string_value(arg.value)
            if value is not None:
                text += value + " "
                continue
            inner = pieces(arg.value)
            if inner:
                out.extend(inner)
                text = ""
            else:
                out.append((text, arg.value))
                text = ""
        return out
    return []


def label(text: str) -> str | None:
    """The metric name a print label gives: "\\tTest Avg loss: " -> "avg_loss" (at most two words)."""
    found = _LABEL.search(text.replace("\n", " ").replace("\t", " ").rstrip())
    if not found:
        return None
    words = [w for w in re.split(r"[\s]+", found.group(1).strip()) if w]
    if not words:
        return None
    return "_".join(words[-2:]).lower().replace("@", "")
