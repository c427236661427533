"""Device-call cleanup: `.to(device)`, `.cuda()`, `.cpu()` on models and batches go; the Trainer
places them. Statements left with nothing to do (`x = x`, `model`) are dropped."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from migrate.analysis import device as dev
from migrate.analysis.nodes import dotted, expr_statement, find, pairwise_assign, walk


# Pre-1.0 and single-machine multi-GPU wrappers the Trainer makes pointless: `Variable(x)` is `x`
# since PyTorch 0.4, and the Trainer, not `DataParallel`, decides how many devices run the model.
_WRAPPERS = {"Variable", "autograd.Variable", "torch.autograd.Variable", "nn.DataParallel",
             "torch.nn.DataParallel", "DataParallel"}


class DeviceCleanup(cst.CSTTransformer):
    def __init__(self, device_names: set[str], model_name: str | None = None) -> None:
        self.device_names = device_names
        self.model_name = model_name
        self._keep: set[int] = set()
        self.changed = False

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        """`model.module` (the network inside DataParallel) is the model itself once unwrapped."""
        if updated.attr.value == "module" and self.model_name and m.matches(updated.value, m.Name(self.model_name)):
            self.changed = True
            return updated.value
        return updated

    def _is_device(self, expr: cst.BaseExpression) -> bool:
        return (
            dotted(expr) in self.device_names
            or dev.is_device_value(expr)
            or m.matches(expr, m.Attribute(attr=m.Name("device")))
        )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        # `x.cpu().numpy()`: the copy to host is needed there, keep it.
        if m.matches(node.value, m.Call(func=m.Attribute(attr=m.Name("cpu")))):
            self._keep.add(id(node.value))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = updated.func
        if dotted(func) in _WRAPPERS and len(updated.args) == 1 and updated.args[0].keyword is None:
            self.changed = True
            return updated.args[0].value
        if not isinstance(func, cst.Attribute):
            return updated
        name = func.attr.value
        if name == "cuda" or (name == "cpu" and id(original) not in self._keep):
            if all(
                arg.keyword is not None and arg.keyword.value == "non_blocking"
                for arg in updated.args
            ):
                self.changed = True
                return func.value
            return updated
        if name != "to" or not updated.args:
            return updated
        args = list(updated.args)
        rest = []
        dropped = False
        for arg in args:
            if (arg.keyword is None and not dropped and self._is_device(arg.value)) or (
                arg.keyword is not None
                and arg.keyword.value == "device"
                and self._is_device(arg.value)
            ):
                dropped = True
                continue
            if (
                arg.keyword is not None
                and arg.keyword.value in ("non_blocking", "copy")
                and dropped
            ):
                continue
            rest.append(arg)
        if not dropped:
            return updated
        self.changed = True
        if not rest:
            return func.value
        rest[-1] = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(args=rest)


def is_noop(stmt: cst.CSTNode) -> bool:
    """`x = x`, `x, y = x, y`, a bare name or a conditional without calls."""
    pairs = pairwise_assign(stmt)
    if pairs and all(isinstance(v, cst.Name) and v.value == n for n, v in pairs):
        return True
    expr = expr_statement(stmt)
    if isinstance(expr, cst.IfExp) and not find(expr.body, cst.Call) and not find(expr.orelse, cst.Call):
        return True
    if (
        expr is not None
        and not find(expr, cst.Call)
        and not isinstance(expr, (cst.SimpleString, cst.ConcatenatedString))
    ):
        return True
    return False


_PLACEMENT_METHODS = frozenset({"to", "cuda", "cpu"})


def _needs_cleanup(stmt: cst.CSTNode) -> bool:
    """Whether the statement places, wraps or unwraps anything: only those need the transformer."""
    for n in walk(stmt):
        if type(n) is cst.Call and (
            (type(n.func) is cst.Attribute and n.func.attr.value in _PLACEMENT_METHODS) or dotted(n.func) in _WRAPPERS
        ):
            return True
        if type(n) is cst.Attribute and n.attr.value == "module":
            return True
    return False


def clean_statements(stmts, device_names: set[str], model_name: str | None = None) -> list:
    out = []
    for stmt in stmts:
        cleaner = DeviceCleanup(device_names, model_name)
        new = stmt.visit(cleaner) if _needs_cleanup(stmt) else stmt
        if cleaner.changed and is_noop(new):
            continue
        if cleaner.changed and isinstance(new, cst.SimpleStatementLine) and len(new.body) > 1:
            kept = [part for part in new.body if not is_noop(cst.SimpleStatementLine(body=[part]))]
            if not kept:
                continue
            kept[-1] = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            new = new.with_changes(body=kept)
        if isinstance(new, cst.If):
            new = _clean_if(new)
            if new is None:
                continue
        out.append(new)
    return out


def _clean_if(stmt: cst.If):
    """`if torch.cuda.is_available(): model.cuda()` -> gone."""
    body = [s for s in stmt.body.body if not is_noop(s)]
    if not body and stmt.orelse is None and dev.mentions_cuda(stmt.test):
        return None
    if not body:
        body = [cst.SimpleStatementLine([cst.Pass()])]
    return stmt.with_changes(body=stmt.body.with_changes(body=body))
