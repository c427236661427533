"""`torch.utils.tensorboard.SummaryWriter` as a Lightning logger.

A hand-made writer becomes `Trainer(logger=TensorBoardLogger(...))` writing to the same
directory, and `writer.add_scalar(tag, value, step)` becomes `self.log(tag, value)`: the
Trainer supplies the step. Other writer methods go to the logger's own SummaryWriter,
`self.logger.experiment`, with the script's step counter replaced by `self.global_step`.
"""

from __future__ import annotations

import libcst as cst

from migrate.analysis.nodes import call_name, dotted, expr_statement, find, method_call, strip_item

_WRITERS = {
    "SummaryWriter", "torch.utils.tensorboard.SummaryWriter", "tensorboard.SummaryWriter",
    "tensorboardX.SummaryWriter",
}
_CLOSING = {"close", "flush"}


def is_summary_writer(expr: cst.BaseExpression | None) -> bool:
    return call_name(expr) in _WRITERS


def logger_for(writer: cst.Call) -> cst.Call:
    """`SummaryWriter(log_dir=d)` -> `TensorBoardLogger(save_dir=d, name="", version="")`, the same directory."""
    log_dir = next(
        (
            arg.value
            for index, arg in enumerate(writer.args)
            if (arg.keyword is None and index == 0) or (arg.keyword is not None and arg.keyword.value == "log_dir")
        ),
        None,
    )
    if log_dir is None:
        return cst.parse_expression('TensorBoardLogger(save_dir="runs")')
    return cst.Call(
        func=cst.Name("TensorBoardLogger"),
        args=[
            cst.Arg(log_dir, keyword=cst.Name("save_dir")),
            cst.Arg(cst.SimpleString('""'), keyword=cst.Name("name")),
            cst.Arg(cst.SimpleString('""'), keyword=cst.Name("version")),
        ],
    )


def step_counters(body: cst.CSTNode, writers: set[str]) -> set[str]:
    """Names passed as the step (third argument) of a writer's calls: global step counters."""
    counters = set()
    for call in find(body, cst.Call):
        mc = method_call(call)
        if mc and dotted(mc[0]) in writers and len(call.args) >= 3 and isinstance(call.args[2].value, cst.Name):
            counters.add(call.args[2].value.value)
    return counters


def is_closing(stmt: cst.CSTNode, writers: set[str]) -> bool:
    mc = method_call(expr_statement(stmt))
    return bool(mc and dotted(mc[0]) in writers and mc[1] in _CLOSING)


def logged(stmt: cst.CSTNode, writers: set[str], counters: set[str]) -> cst.SimpleStatementLine | None:
    """`writer.add_scalar(tag, value, step)` -> `self.log(tag, value)`; any other writer call ->
    the same call on `self.logger.experiment`, counters read as `self.global_step`."""
    expr = expr_statement(stmt)
    mc = method_call(expr)
    if not (mc and dotted(mc[0]) in writers) or mc[1] in _CLOSING:
        return None
    if mc[1] == "add_scalar" and len(expr.args) >= 2 and all(arg.keyword is None for arg in expr.args[:2]):
        call = cst.Call(
            func=cst.parse_expression("self.log"),
            args=[expr.args[0], expr.args[1].with_changes(value=strip_item(expr.args[1].value), comma=cst.MaybeSentinel.DEFAULT)],
        )
    else:
        args = [
            arg.with_changes(value=cst.parse_expression("self.global_step"))
            if isinstance(arg.value, cst.Name) and arg.value.value in counters
            else arg
            for arg in expr.args
        ]
        call = expr.with_changes(func=cst.parse_expression(f"self.logger.experiment.{mc[1]}"), args=args)
    return stmt.with_changes(body=[cst.Expr(call)])


def is_counter_step(stmt: cst.CSTNode, counters: set[str]) -> bool:
    """`global_step += 1`."""
    node = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
    return (
        isinstance(node, cst.AugAssign)
        and isinstance(node.operator, cst.AddAssign)
        and isinstance(node.target, cst.Name)
        and node.target.value in counters
    )
