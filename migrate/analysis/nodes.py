"""Small read-only helpers over libcst nodes."""

from __future__ import annotations

from typing import Sequence, TypeVar

import libcst as cst
import libcst.matchers as m

from migrate.cst_walk import children, walk

_EMPTY = cst.Module(body=[])
N = TypeVar("N", bound=cst.CSTNode)


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def dotted(node: cst.CSTNode | None) -> str | None:
    """`torch.nn.Linear` -> "torch.nn.Linear"; None for anything but names and attributes."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def call_name(node: cst.CSTNode | None) -> str | None:
    return dotted(node.func) if isinstance(node, cst.Call) else None


def method_call(node: cst.CSTNode | None) -> tuple[cst.BaseExpression, str] | None:
    """`obj.meth(...)` -> (obj, "meth")."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return node.func.value, node.func.attr.value
    return None


def expr_statement(stmt: cst.CSTNode) -> cst.BaseExpression | None:
    """The expression of a one-expression statement line (`foo()`), else None."""
    if (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
    ):
        return stmt.body[0].value
    return None


def small(stmt: cst.CSTNode) -> cst.BaseSmallStatement | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        return stmt.body[0]
    return None


def assign_parts(
    stmt: cst.CSTNode,
) -> tuple[list[cst.BaseAssignTargetExpression], cst.BaseExpression] | None:
    node = small(stmt)
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets], node.value
    if isinstance(node, cst.AnnAssign) and node.value is not None:
        return [node.target], node.value
    return None


def target_names(target: cst.CSTNode) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in target_names(el.value)]
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


def simple_assign(stmt: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    """`name = value` -> (name, value)."""
    parts = assign_parts(stmt)
    if parts and len(parts[0]) == 1 and isinstance(parts[0][0], cst.Name):
        return parts[0][0].value, parts[1]
    return None


def pairwise_assign(stmt: cst.CSTNode) -> list[tuple[str, cst.BaseExpression]] | None:
    """`a = x` or `a, b = x, y` -> [(a, x), (b, y)]."""
    one = simple_assign(stmt)
    if one:
        return [one]
    parts = assign_parts(stmt)
    if (
        parts
        and len(parts[0]) == 1
        and isinstance(parts[0][0], cst.Tuple)
        and isinstance(parts[1], cst.Tuple)
    ):
        left, right = parts[0][0].elements, parts[1].elements
        if len(left) == len(right) and all(isinstance(el.value, cst.Name) for el in left):
            return [(l.value.value, r.value) for l, r in zip(left, right)]
    return None


def find(nodes: cst.CSTNode | Sequence[cst.CSTNode], kind: type[N], matcher=None) -> list[N]:
    """Descendants of type `kind` (that also match `matcher`), in source order."""
    found = []
    for root in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        for node in walk(root):
            if isinstance(node, kind) and (matcher is None or m.matches(node, matcher)):
                found.append(node)
    return found


class _Names:
    """Names a piece of code loads and binds, as a data-flow reading of it needs them."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.stored: set[str] = set()

    def visit(self, node: cst.CSTNode) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            descend = self._enter(current)
            if descend is True:
                stack.extend(reversed(list(children(current))))
            elif descend:
                stack.extend(reversed(descend))

    def _enter(self, node: cst.CSTNode) -> bool | list[cst.CSTNode]:
        """True: walk all children; a list: walk just those; False: walk none.

        Exact-type tests: libcst node classes are concrete, and ABC isinstance is slow.
        """
        kind = type(node)
        if kind is cst.Name:
            self.loaded.append(node.value)
            return False
        if kind is cst.Attribute or kind is cst.Arg:
            return [node.value]
        if kind not in _BINDING_KINDS:
            return True
        if kind is cst.Param:
            self.stored.add(node.name.value)
            return [node.default] if node.default is not None else False
        if kind is cst.AssignTarget:
            self.stored.update(target_names(node.target))
            return _target_subexpressions(node.target)
        if kind is cst.AnnAssign:
            self.stored.update(target_names(node.target))
            return [node.value] if node.value is not None else False
        if kind is cst.AugAssign or kind is cst.For or kind is cst.CompFor:
            self.stored.update(target_names(node.target))
        elif kind is cst.WithItem:
            if node.asname is not None:
                self.stored.update(target_names(node.asname.name))
        elif kind is cst.FunctionDef or kind is cst.ClassDef:
            self.stored.add(node.name.value)
            return False
        elif kind is cst.ImportAlias:
            name = node.asname.name if node.asname else node.name
            self.stored.add(code(name).split(".")[0])
            return False
        elif kind is cst.Lambda:
            return False
        return True


_BINDING_KINDS = frozenset({
    cst.Param, cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.WithItem,
    cst.FunctionDef, cst.ClassDef, cst.ImportAlias, cst.Lambda,
})


def _target_subexpressions(target: cst.CSTNode) -> list[cst.CSTNode]:
    if isinstance(target, (cst.Attribute, cst.Subscript)):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [sub for el in target.elements for sub in _target_subexpressions(el.value)]
    return []


def _names(nodes) -> _Names:
    visitor = _Names()
    for node in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        visitor.visit(node)
    return visitor


def names_used(nodes) -> list[str]:
    """Names loaded (excluding attribute names), in order, in the given node(s)."""
    return _names(nodes).loaded


def names_stored(nodes) -> set[str]:
    return _names(nodes).stored


def all_names(nodes) -> set[str]:
    """Every name written anywhere in `nodes`, nested functions and lambdas included: what a
    check that nothing else mentions a name must look through."""
    found: set[str] = set()
    skip: set[int] = set()  # attribute names (`x.name`) and keywords (`f(name=...)`)
    for root in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        for node in walk(root):
            kind = type(node)
            if kind is cst.Attribute:
                skip.add(id(node.attr))
            elif kind is cst.Arg and node.keyword is not None:
                skip.add(id(node.keyword))
            elif kind is cst.Name and id(node) not in skip:
                found.add(node.value)
    return found


def free_names(nodes) -> list[str]:
    """Loaded names that the nodes do not bind themselves, first use first."""
    visitor = _names(nodes)
    seen: list[str] = []
    for name in visitor.loaded:
        if name not in visitor.stored and name not in seen:
            seen.append(name)
    return seen


def contains(node: cst.CSTNode, matcher) -> bool:
    return any(m.matches(n, matcher) for n in walk(node))


def has_backward(node: cst.CSTNode) -> bool:
    return any(
        isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value == "backward"
        for n in walk(node)
    )


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name2`, `name3`...: the first not in `taken`, which then holds it."""
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}{n}"
        n += 1
    taken.add(candidate)
    return candidate


def is_int(node: cst.CSTNode | None, value: int | None = None) -> bool:
    if not isinstance(node, cst.Integer):
        return False
    return value is None or node.evaluated_value == value


def is_zero_literal(node: cst.CSTNode) -> bool:
    return (isinstance(node, cst.Integer) and node.evaluated_value == 0) or (
        isinstance(node, cst.Float) and node.evaluated_value == 0.0
    )


def strip_item(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`x.item()` -> `x`, also nested (`loss.item() * n`), and `float(x)` -> `x`."""

    class _Strip(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
            if (
                isinstance(updated.func, cst.Attribute)
                and updated.func.attr.value == "item"
                and not updated.args
            ):
                inner = updated.func.value
                # `loss.data.item()`: `.data` only detached the value, which self.log does itself
                return inner.value if m.matches(inner, m.Attribute(attr=m.Name("data"))) else inner
            if m.matches(updated, m.Call(func=m.Name("float"), args=[m.Arg(keyword=None)])):
                return updated.args[0].value
            return updated

    return expr.visit(_Strip())
