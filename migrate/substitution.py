"""Renaming names inside a piece of code: a helper's parameters to the caller's expressions,
the driver's names to what a generated class holds. Analysis and rewrite both need it."""

from __future__ import annotations

import libcst as cst

from migrate.cst_walk import walk


class NameLoads(cst.CSTTransformer):
    """A transformer that knows which Name nodes load a variable: not attribute names, keywords,
    parameters or the names functions are defined under (`is_load`)."""

    def __init__(self) -> None:
        self._skip: set[int] = set()

    def is_load(self, name: cst.Name) -> bool:
        return id(name) not in self._skip

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._skip.add(id(node.attr))
        return True

    def visit_Arg(self, node: cst.Arg) -> bool:
        if node.keyword is not None:
            self._skip.add(id(node.keyword))
        return True

    def visit_Param(self, node: cst.Param) -> bool:
        self._skip.add(id(node.name))
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._skip.add(id(node.name))
        return True


class Substitute(NameLoads):
    """Replaces loaded names and `args.x` chains."""

    def __init__(self, names: dict[str, cst.BaseExpression], attribute_fn=None) -> None:
        super().__init__()
        self.names = names
        self.attribute_fn = attribute_fn

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        if self.attribute_fn is not None and isinstance(original.value, cst.Name):
            replaced = self.attribute_fn(original.value.value, original.attr.value)
            if replaced is not None:
                return replaced
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if not self.is_load(original):
            return updated
        replacement = self.names.get(original.value)
        return replacement if replacement is not None else updated


def substitute(node, names: dict[str, cst.BaseExpression], attribute_fn=None):
    if not _mentions(node, names, attribute_fn):
        return node
    return node.visit(Substitute(names, attribute_fn))


def _mentions(node: cst.CSTNode, names: dict, attribute_fn) -> bool:
    """A cheap read-only pass first: most statements have nothing to rename, and a libcst
    transformer rebuilds every node it passes even then."""
    if not names and attribute_fn is None:
        return False
    for sub in walk(node):
        kind = type(sub)
        if kind is cst.Name and sub.value in names:
            return True
        if (
            attribute_fn is not None
            and kind is cst.Attribute
            and type(sub.value) is cst.Name
            and attribute_fn(sub.value.value, sub.attr.value) is not None
        ):
            return True
    return False
