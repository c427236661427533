"""Recognises what a print() shows: (label, expression) pairs, and turns labels into metric names."""

from __future__ import annotations

import re

import libcst as cst

from migrate.analysis.nodes import call_name

_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
_PERCENT_SPEC = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifgeErxXoc%]")
_LABEL = re.compile(r"([A-Za-z][A-Za-z0-9_@ ]*?)[\s:=\-]*$")


def is_print(expr: cst.CSTNode | None) -> bool:
    return call_name(expr) in ("print", "tqdm.write", "logging.info", "logger.info", "pbar.write")


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


def _fstring_pieces(node: cst.FormattedString) -> list[tuple[str, cst.BaseExpression]]:
    text, pieces = "", []
    for part in node.parts:
        if isinstance(part, cst.FormattedStringText):
            text += part.value
        elif isinstance(part, cst.FormattedStringExpression):
            pieces.append((text, part.expression))
            text = ""
    return pieces


def _split(template: str, pattern: re.Pattern[str], values: list[cst.BaseExpression]):
    texts = pattern.split(template)
    return [(texts[i], value) for i, value in enumerate(values) if i < len(texts)]


def pieces(expr: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    """The (preceding text, value) pairs a print call or formatted string shows."""
    if isinstance(expr, cst.FormattedString):
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
