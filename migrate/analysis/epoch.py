"""Recognises statements the epoch loop (or a loop helper) runs once per epoch, around the batch
loops: housekeeping calls, statements that read the metrics an evaluation returned (best-metric
tracking, early exits...), and a gathered-predictions accuracy. Each becomes code in an
epoch-end hook instead of a `# migrate: review` marker."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import (
    call_name,
    children,
    dotted,
    expr_statement,
    find,
    method_call,
    names_stored,
    names_used,
    strip_item,
    walk,
)
from migrate.analysis.plan import Accumulator, EpochStatement

__all__ = [
    "EpochStatement",
    "changes_lr",
    "gathered_accuracy",
    "is_housekeeping",
    "loop_breaks",
    "lr_read",
    "metric_reads",
    "updated_state",
]

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


def _is_lr_key(node: cst.CSTNode) -> bool:
    return m.matches(node, m.Subscript(slice=[m.SubscriptElement(m.Index(m.SimpleString()))])) and \
        node.slice[0].slice.value.evaluated_value == "lr"


def _param_groups_of(node: cst.CSTNode, optimizers: set[str]) -> bool:
    """`opt.param_groups` for one of the optimizer names."""
    return (
        isinstance(node, cst.Attribute)
        and node.attr.value == "param_groups"
        and dotted(node.value) in optimizers
    )


def lr_read(expr: cst.BaseExpression | None, optimizers: set[str], schedulers: set[str]) -> bool:
    """`opt.param_groups[0]["lr"]`, `scheduler.get_last_lr()[0]` or `scheduler.get_last_lr()`."""
    if expr is None:
        return False
    if _is_lr_key(expr) and isinstance(expr.value, cst.Subscript) and _param_groups_of(expr.value.value, optimizers):
        return True
    if isinstance(expr, cst.Subscript):
        expr = expr.value
    call = method_call(expr)
    return call is not None and call[1] == "get_last_lr" and dotted(call[0]) in schedulers and not expr.args


def changes_lr(stmt: cst.CSTNode, optimizers: set[str]) -> bool:
    """A statement whose only effect is setting learning rates on the optimizer's param groups:
    `for g in opt.param_groups: g["lr"] *= 0.5` or `opt.param_groups[0]["lr"] = x`, possibly
    under an `if`. Names it binds are the loop variables over `param_groups` only."""
    loop_vars: set[str] = set()
    for loop in find(stmt, cst.For):
        if isinstance(loop.target, cst.Name) and _param_groups_of(loop.iter, optimizers):
            loop_vars.add(loop.target.value)
    writes = 0
    for node in walk(stmt):
        if isinstance(node, (cst.Break, cst.Continue, cst.Return, cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        if isinstance(node, (cst.Assign, cst.AugAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if not _is_lr_key(target):
                    return False
                base = target.value
                if not (dotted(base) in loop_vars or (
                    isinstance(base, cst.Subscript) and _param_groups_of(base.value, optimizers))):
                    return False
                writes += 1
        if isinstance(node, (cst.AnnAssign, cst.NamedExpr, cst.Del)):
            return False
    return writes > 0 and names_stored(stmt) <= loop_vars


def loop_breaks(node: cst.CSTNode) -> bool:
    """Whether `node` holds a `break` for the loop around it (not one of a loop inside it)."""
    for child in children(node):
        if isinstance(child, (cst.For, cst.While, cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(child, cst.Break) or loop_breaks(child):
            return True
    return False
