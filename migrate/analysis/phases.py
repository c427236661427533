"""A second training phase, as in transfer learning: train the head, then unfreeze and go on.

The script runs a second epoch loop after the first, with the same per-epoch work and some
set-up in between (parameters unfrozen, a new optimizer at a lower lr). One fit over both
phases' epochs, with that set-up run in `on_train_epoch_start` when the second phase begins
and the new optimizer handed to the Trainer, trains the same: the data order continues from
epoch to epoch exactly as the script's loops drew it.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from migrate.analysis import printing
from migrate.analysis.loops import epoch_range, unwrap_iter
from migrate.analysis.nodes import code, expr_statement, simple_assign

_REQUIRES_GRAD = m.For(
    iter=m.Call(func=m.Attribute(attr=m.Name("parameters"))),
    body=m.IndentedBlock(
        body=[m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(m.Attribute(attr=m.Name("requires_grad")))])])]
    ),
)


@dataclass
class NextPhase:
    starts_at: cst.BaseExpression  # the epoch the second phase begins with (phase one's epoch count)
    total_epochs: cst.BaseExpression
    setup: list[cst.BaseStatement]  # unfreezing, in order; the optimizer goes separately
    optimizer: cst.BaseExpression | None  # the optimizer the second phase builds
    statements: list[cst.BaseStatement]  # every driver statement the fit replaces


def _per_epoch_work(loop: cst.For) -> list[str]:
    """The loop body without its prints (each phase labels its own)."""
    return [code(s) for s in loop.body.body if not printing.is_print(expr_statement(s))]


def _is_setup(stmt: cst.BaseStatement) -> bool:
    """`for p in backbone.parameters(): p.requires_grad = True`, or `backbone.requires_grad_(False)`."""
    call = expr_statement(stmt)
    return m.matches(stmt, _REQUIRES_GRAD) or m.matches(call, m.Call(func=m.Attribute(attr=m.Name("requires_grad_"))))


def next_phase(
    first: cst.For, first_epochs: cst.BaseExpression, between: list[cst.BaseStatement], second: cst.For, optimizer: str | None
) -> NextPhase | None:
    """The second loop as a continuation of the first, or None when it is anything else."""
    if _per_epoch_work(first) != _per_epoch_work(second):
        return None
    span = epoch_range(second)
    if span is None:
        return None
    count, start = span
    if start is None:
        total: cst.BaseExpression = cst.BinaryOperation(left=first_epochs, operator=cst.Add(), right=count)
    elif code(start) == code(first_epochs):
        total = unwrap_iter(second.iter)[0].args[1].value  # range(a, b): b
    else:
        return None
    setup, new_optimizer = [], None
    for stmt in between:
        one = simple_assign(stmt)
        if one is not None and one[0] == optimizer and new_optimizer is None:
            new_optimizer = one[1]
        elif _is_setup(stmt):
            setup.append(stmt)
        else:
            return None
    if m.matches(total, m.BinaryOperation(left=m.Integer(), operator=m.Add(), right=m.Integer())):
        total = cst.Integer(str(int(total.left.value) + int(total.right.value)))
    return NextPhase(first_epochs, total, setup, new_optimizer, [*between, second])

