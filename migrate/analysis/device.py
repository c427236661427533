"""Recognises device handling: `device = ...` in its common spellings, and the accelerator it implies."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import call_name, code, contains

_DEVICE_STRINGS = ("cuda", "cpu", "mps", "xpu")
_DEVICE_CALLS = (
    "torch.device",
    "device",
    "torch.accelerator.current_accelerator",
    "get_device",
    "torch.cuda.current_device",
)


def is_device_value(expr: cst.CSTNode | None) -> bool:
    """`torch.device(...)`, `"cuda"`, `"cuda:0" if ... else "cpu"`, `torch.accelerator.current_accelerator()`."""
    if expr is None:
        return False
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return isinstance(value, str) and value.split(":")[0] in _DEVICE_STRINGS
    if isinstance(expr, cst.IfExp):
        return is_device_value(expr.body) and is_device_value(expr.orelse)
    name = call_name(expr)
    return name in _DEVICE_CALLS


def device_test(expr: cst.CSTNode) -> cst.BaseExpression | None:
    """The condition that picks the accelerator in a device expression, if any."""
    if isinstance(expr, cst.IfExp):
        return expr.test
    if isinstance(expr, cst.Call) and expr.args:
        return device_test(expr.args[0].value)
    return None


def device_if(stmt: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    """`if use_accel: device = X else: device = Y` -> ("device", test)."""
    if not isinstance(stmt, cst.If) or stmt.orelse is None:
        return None
    names = set()
    blocks = [stmt.body]
    branch = stmt.orelse
    while isinstance(branch, cst.If):  # elif chains: cuda / mps / cpu
        blocks.append(branch.body)
        branch = branch.orelse
    if not isinstance(branch, cst.Else):
        return None
    blocks.append(branch.body)
    for block in blocks:
        for inner in block.body:
            small = (
                inner.body[0]
                if isinstance(inner, cst.SimpleStatementLine) and len(inner.body) == 1
                else None
            )
            if not (
                isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
            ):
                return None
            if not is_device_value(small.value):
                return None
            names.add(small.targets[0].target.value)
    if len(names) != 1:
        return None
    return names.pop(), stmt.test


def accelerator_for(test: cst.BaseExpression | None) -> cst.BaseExpression:
    """`"auto"`, or `"auto" if <the user's test> else "cpu"` when a flag (no-cuda, no-accel) drives it."""
    auto = cst.SimpleString('"auto"')
    if test is None or is_availability(test):
        return auto
    return cst.IfExp(test=test, body=auto, orelse=cst.SimpleString('"cpu"'))


def is_availability(test: cst.BaseExpression | None) -> bool:
    """`torch.cuda.is_available()` and its siblings: a flag the Trainer's accelerator="auto" replaces."""
    return call_name(test) in (
        "torch.cuda.is_available",
        "torch.accelerator.is_available",
        "torch.backends.mps.is_available",
    )


def is_cuda_housekeeping(expr: cst.CSTNode | None) -> bool:
    return call_name(expr) in ("torch.cuda.empty_cache", "torch.cuda.synchronize")


def mentions_cuda(node: cst.CSTNode) -> bool:
    return contains(node, m.Attribute(attr=m.Name("cuda"))) or "cuda" in code(node)
