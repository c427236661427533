"""Small read-only helpers over libcst nodes."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

_EMPTY = cst.Module(body=[])


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


class _Names(cst.CSTVisitor):
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.stored: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.loaded.append(node.value)

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        self.stored.add(node.name.value)
        if node.default is not None:
            node.default.visit(self)
        return False

    def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
        self.stored.update(target_names(node.target))
        _visit_target_subexpressions(node.target, self)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.stored.update(target_names(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        self.stored.update(target_names(node.target))
        if node.value is not None:
            node.value.visit(self)
        return False

    def visit_For(self, node: cst.For) -> None:
        self.stored.update(target_names(node.target))

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.stored.update(target_names(node.target))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self.stored.update(target_names(node.asname.name))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.stored.add(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.stored.add(node.name.value)
        return False

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        name = node.asname.name if node.asname else node.name
        self.stored.add(code(name).split(".")[0])
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _visit_target_subexpressions(target: cst.CSTNode, visitor: _Names) -> None:
    if isinstance(target, (cst.Attribute, cst.Subscript)):
        target.visit(visitor)
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            _visit_target_subexpressions(el.value, visitor)


def names_used(nodes) -> list[str]:
    """Names loaded (excluding attribute names), in order, in the given node(s)."""
    visitor = _Names()
    for node in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        node.visit(visitor)
    return visitor.loaded


def names_stored(nodes) -> set[str]:
    visitor = _Names()
    for node in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        node.visit(visitor)
    return visitor.stored


def free_names(nodes) -> list[str]:
    """Loaded names that the nodes do not bind themselves, first use first."""
    visitor = _Names()
    for node in nodes if isinstance(nodes, (list, tuple)) else [nodes]:
        node.visit(visitor)
    seen: list[str] = []
    for name in visitor.loaded:
        if name not in visitor.stored and name not in seen:
            seen.append(name)
    return seen


def contains(node: cst.CSTNode, matcher) -> bool:
    return bool(m.findall(node, matcher))


BACKWARD = m.Call(func=m.Attribute(attr=m.Name("backward")))


def has_backward(node: cst.CSTNode) -> bool:
    return contains(node, BACKWARD)


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
                return updated.func.value
            if m.matches(updated, m.Call(func=m.Name("float"), args=[m.Arg(keyword=None)])):
                return updated.args[0].value
            return updated

    return expr.visit(_Strip())
