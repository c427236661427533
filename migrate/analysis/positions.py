"""Where statements are, read from CPython's parser instead of a libcst position pass.

libcst's PositionProvider regenerates the whole module to learn positions, which costs
more than the parse itself. Findings point at statements, and CPython's `ast` knows
their lines for almost nothing, so statements are paired with their `ast` twins. Any
other node falls back to the libcst pass, run at most once per script.
"""

from __future__ import annotations

import ast
from typing import Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from migrate.analysis.plan import Span

_Body = Sequence[cst.CSTNode]


class Positions:
    """Spans of a module's nodes; lines are 1-based, columns 1-based."""

    def __init__(self, module: cst.Module, source: str | None = None) -> None:
        self._module = module
        self._spans: dict[cst.CSTNode, Span] = {}
        self._aliases: dict[cst.CSTNode, cst.CSTNode] = {}
        self._fallback: dict | None = None
        if source is None:
            return
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return
        if not self._pair_body(module.body, tree.body):
            self._spans.clear()

    def alias(self, node: cst.CSTNode, original: cst.CSTNode) -> None:
        """A node the analysis built in place of `original` is reported where `original` was.

        Resolved when asked for: a reading that rebuilds a whole class aliases every node it
        rebuilds, and findings name only a few of them."""
        if node is not original:
            self._aliases[node] = original

    def span(self, node: cst.CSTNode) -> Span:
        found = self._spans.get(node)
        if found is not None:
            return found
        original = self._aliases.get(node)
        if original is not None:
            return self.span(original)
        if self._fallback is None:
            self._fallback = MetadataWrapper(self._module, unsafe_skip_copy=True).resolve(PositionProvider)
        pos = self._fallback.get(node)
        if pos is None:
            return Span(0, 0, 0)
        return Span(pos.start.line, pos.start.column + 1, pos.end.line)

    def _record(self, node: cst.CSTNode, twin: ast.AST, end: ast.AST | None = None) -> None:
        last = end or twin
        self._spans[node] = Span(twin.lineno, twin.col_offset + 1, last.end_lineno)

    def _record_small(self, small: cst.CSTNode, twin: ast.stmt) -> None:
        self._record(small, twin)
        # The call of an expression statement (`print(...)`) is often what a finding names.
        if isinstance(small, cst.Expr) and isinstance(twin, ast.Expr) and not getattr(small.value, "lpar", ()):
            self._record(small.value, twin.value)

    def _pair_body(self, body: _Body, twins: list[ast.stmt]) -> bool:
        """Pairs a statement list with its ast twins; False when the shapes disagree."""
        index = 0
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                parts = twins[index : index + len(stmt.body)]
                if len(parts) != len(stmt.body):
                    return False
                self._record(stmt, parts[0], parts[-1])
                for small, twin in zip(stmt.body, parts):
                    self._record_small(small, twin)
                index += len(stmt.body)
                continue
            if index >= len(twins) or not self._pair_compound(stmt, twins[index]):
                return False
            index += 1
        return index == len(twins)

    def _pair_block(self, block: cst.BaseSuite, twins: list[ast.stmt]) -> bool:
        if isinstance(block, cst.SimpleStatementSuite):
            if len(block.body) != len(twins):
                return False
            for small, twin in zip(block.body, twins):
                self._record_small(small, twin)
            return True
        return self._pair_body(block.body, twins)

    def _pair_else(self, orelse: cst.CSTNode | None, twins: list[ast.stmt]) -> bool:
        if orelse is None:
            return not twins
        if isinstance(orelse, cst.If):  # elif
            return len(twins) == 1 and self._pair_compound(orelse, twins[0])
        return self._pair_block(orelse.body, twins)

    def _pair_compound(self, stmt: cst.CSTNode, twin: ast.stmt) -> bool:
        self._record(stmt, twin)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and isinstance(
            twin, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            return self._pair_block(stmt.body, twin.body)
        if isinstance(stmt, (cst.If, cst.While)) and isinstance(twin, (ast.If, ast.While)):
            return self._pair_block(stmt.body, twin.body) and self._pair_else(stmt.orelse, twin.orelse)
        if isinstance(stmt, cst.For) and isinstance(twin, (ast.For, ast.AsyncFor)):
            return self._pair_block(stmt.body, twin.body) and self._pair_else(stmt.orelse, twin.orelse)
        if isinstance(stmt, cst.With) and isinstance(twin, (ast.With, ast.AsyncWith)):
            return self._pair_block(stmt.body, twin.body)
        if isinstance(stmt, (cst.Try, cst.TryStar)) and isinstance(twin, (ast.Try, ast.TryStar)):
            if len(stmt.handlers) != len(twin.handlers):
                return False
            for handler, handler_twin in zip(stmt.handlers, twin.handlers):
                self._record(handler, handler_twin)
                if not self._pair_block(handler.body, handler_twin.body):
                    return False
            final = stmt.finalbody.body if stmt.finalbody is not None else None
            return (
                self._pair_block(stmt.body, twin.body)
                and self._pair_else(stmt.orelse, twin.orelse)
                and (self._pair_block(final, twin.finalbody) if final is not None else not twin.finalbody)
            )
        # Anything else (match, ...) keeps its own span; its inner statements use the fallback.
        return True
