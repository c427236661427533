"""A read-only walk over libcst trees, in source order.

libcst's own visitors rebuild every node they pass, even when they change nothing; reading a
script that way costs several times its parse. This walk only reads.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Iterator

import libcst as cst

# Fields that only hold whitespace, punctuation or comments: a read-only walk skips them.
_LAYOUT_FIELDS = frozenset({
    "lpar", "rpar", "comma", "semicolon", "colon", "dot", "equal", "star", "newline", "header",
    "footer", "leading_lines", "lines_after_decorators", "trailing_whitespace", "lbracket",
    "rbracket", "lbrace", "rbrace", "operator", "asynchronous", "whitespace_after_star",
    "whitespace_after_param", "whitespace_after_arg", "whitespace_before", "whitespace_after",
})
# Dataclass field order is source order except for these.
_ORDER_OVERRIDES = {
    cst.IfExp: ("body", "test", "orelse"),
    cst.FunctionDef: ("decorators", "name", "type_parameters", "params", "returns", "body"),
    cst.ClassDef: ("decorators", "name", "type_parameters", "bases", "keywords", "body"),
    cst.ExceptHandler: ("type", "name", "body"),
    cst.ExceptStarHandler: ("type", "name", "body"),
    cst.MatchCase: ("pattern", "guard", "body"),
}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_SEQUENCES = (list, tuple)
_SCALARS = (str, cst.MaybeSentinel, bool, int)


def _child_fields(cls: type) -> tuple[str, ...]:
    names = _ORDER_OVERRIDES.get(cls) or tuple(
        f.name for f in fields(cls) if f.name not in _LAYOUT_FIELDS and not f.name.startswith("whitespace")
    )
    _CHILD_FIELDS[cls] = names
    return names


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Child nodes in source order, without layout nodes.

    libcst's own visitors rebuild every node they pass; this walk only reads, which is
    what makes analysing a script cost about as much as parsing it. Node classes are ABCs,
    whose isinstance checks are slow, so values are sorted by their exact type instead.
    """
    cls = type(node)
    for name in _CHILD_FIELDS.get(cls) or _child_fields(cls):
        value = getattr(node, name)
        kind = type(value)
        if kind in _SEQUENCES:
            yield from value
        elif kind not in _SCALARS and value is not None:
            yield value


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The node and all its descendants, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))
