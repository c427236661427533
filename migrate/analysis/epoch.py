"""Recognises statements the epoch loop (or a loop helper) runs once per epoch, around the batch
loops: housekeeping calls, statements that read the metrics an evaluation returned (best-metric
tracking, early exits...), and a gathered-predictions accuracy. Each becomes code in an
epoch-end hook instead of a `# migrate: review` marker."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import call_name, expr_statement, find, method_call, names_stored, names_used, strip_item
from migrate.analysis.plan import Accumulator, EpochStatement

__all__ = ["EpochStatement", "gathered_accuracy", "is_housekeeping", "metric_reads", "updated_state"]

HOUSEKEEPING = {"gc.collect", "torch.cuda.empty_cache", "torch.cuda.ipc_collect"}
_CAT = {"torch.cat", "torch.concat", "torch.concatenate"}
_TO_FLOAT = {"float", "double", "half", "to"}


def is_housekeeping(stmt: cst.CSTNode) -> bool:
    """`gc.collect()`, `torch.cuda.empty_cache()`: memory housekeeping that changes no result."""
    expr = expr_statement(stmt)
    return call_name(expr) in HOUSEKEEPING and not expr.args


def metric_reads(stmt: cst.CSTNode, metrics: dict[str, Accumulator]) -> dict[str, Accumulator]:
    """The names `stmt` reads that hold a logged metric (an evaluation's returned value)."""
    return {name: metrics[name] for name in names_used(stmt) if name in metrics}


def updated_state(stmt: cst.CSTNode, driver_names: set[str]) -> list[str]:
    """Driver names (bound before the epoch loop) that `stmt` assigns or mutates in place."""
    stored = names_stored(stmt)
    mutated = set()
    for call in find(stmt, cst.Call, m.Call(func=m.Attribute(value=m.Name()))):
        if call.func.attr.value in ("append", "extend", "update", "add", "insert"):
            mutated.add(call.func.value.value)
    return sorted((stored | mutated) & driver_names)


def _cat_of(expr: cst.BaseExpression, lists: dict[str, Accumulator]) -> Accumulator | None:
    if call_name(expr) in _CAT and expr.args and isinstance(expr.args[0].value, cst.Name):
        acc = lists.get(expr.args[0].value.value)
        if acc is not None and acc.kind == "list":
            return acc
    return None


def gathered_accuracy(
    value: cst.BaseExpression, lists: dict[str, Accumulator]
) -> tuple[Accumulator, Accumulator] | None:
    """`(torch.cat(preds) == torch.cat(labels)).float().mean()` (optionally `.item()`, `.double()`)
    -> (preds, labels): the fraction of equal elements over everything gathered."""
    value = strip_item(value)
    call = method_call(value)
    if call is None or call[1] != "mean" or value.args:
        return None
    inner = call[0]
    cast = method_call(inner)
    while cast is not None and cast[1] in _TO_FLOAT:
        inner = cast[0]
        cast = method_call(inner)
    if not m.matches(inner, m.Comparison(comparisons=[m.ComparisonTarget(operator=m.Equal())])):
        return None
    left, right = _cat_of(inner.left, lists), _cat_of(inner.comparisons[0].comparator, lists)
    if left is None or right is None or left is right:
        return None
    return left, right
