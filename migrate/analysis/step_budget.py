"""`while step < total_steps:` training: a budget of optimizer steps instead of epochs.

Such scripts fetch batches with `next(iterator)`, re-create the iterator when the loader runs
out, and evaluate every N steps. That is `Trainer(max_steps=total, val_check_interval=N,
check_val_every_n_epoch=None)` over ordinary passes of the loader, and a new pass creates its
iterator at the same moment the script did, so the data order is the same. The loop is read
as its epoch form would be written: a batch loop over the loader (the fetch gone), then the
evaluation block.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import call_name, dotted, simple_assign, small


@dataclass
class StepBudget:
    loop: cst.While
    total: cst.BaseExpression
    as_epochs: cst.For  # `for _ in range(1): for <batch> in <loader>: ...; <evaluation>`
    eval_every: cst.BaseExpression | None
    iterator: str

    def trainer_args(self) -> dict[str, cst.BaseExpression]:
        args: dict[str, cst.BaseExpression] = {"max_steps": self.total}
        if self.eval_every is not None:
            args["val_check_interval"] = self.eval_every
            args["check_val_every_n_epoch"] = cst.Name("None")
        return args


def _fetch(stmt: cst.CSTNode, iterator: str) -> cst.BaseAssignTargetExpression | None:
    """`x, y = next(it)`, or that inside `try: ... except StopIteration: it = iter(loader); x, y = next(it)`."""
    if isinstance(stmt, cst.Try):
        if len(stmt.handlers) != 1 or dotted(stmt.handlers[0].type) != "StopIteration" or stmt.orelse or stmt.finalbody:
            return None
        if len(stmt.body.body) != 1:
            return None
        stmt = stmt.body.body[0]
    node = small(stmt)
    if (
        isinstance(node, cst.Assign)
        and len(node.targets) == 1
        and call_name(node.value) == "next"
        and node.value.args
        and dotted(node.value.args[0].value) == iterator
    ):
        return node.targets[0].target
    return None


def _every(stmt: cst.CSTNode, counter: str) -> cst.BaseExpression | None:
    """`if step % N == 0:` -> N."""
    if not isinstance(stmt, cst.If) or stmt.orelse is not None:
        return None
    test = stmt.test
    if m.matches(
        test,
        m.Comparison(
            left=m.BinaryOperation(left=m.Name(counter), operator=m.Modulo()),
            comparisons=[m.ComparisonTarget(operator=m.Equal(), comparator=m.Integer("0"))],
        ),
    ):
        return test.left.right
    return None


def step_budget(loop: cst.While, driver: list[cst.BaseStatement], evaluates) -> StepBudget | None:
    """The loop read as epochs, when it has the shape above; `evaluates(stmt)` says whether a
    statement runs an evaluation (a helper that loops without backward, or a no_grad loop)."""
    test = loop.test
    if loop.orelse is not None or not m.matches(
        test, m.Comparison(left=m.Name(), comparisons=[m.ComparisonTarget(operator=m.LessThan())])
    ):
        return None
    counter, total = test.left.value, test.comparisons[0].comparator
    body = list(loop.body.body)
    if not body:
        return None
    loaders = {
        name: value.args[0].value
        for name, value in filter(None, (simple_assign(s) for s in driver))
        if call_name(value) == "iter" and value.args
    }
    iterator = next((name for name in loaders if _fetch(body[0], name) is not None), None)
    if iterator is None:
        return None
    target = _fetch(body[0], iterator)
    batch_body: list[cst.BaseStatement] = []
    evaluation: list[cst.BaseStatement] = []
    eval_every = None
    for stmt in body[1:]:
        every = _every(stmt, counter)
        if every is not None and any(evaluates(s) for s in stmt.body.body) and eval_every is None:
            eval_every = every
            evaluation = list(stmt.body.body)
            continue
        if evaluation:
            return None  # training statements after the evaluation: no epoch form keeps that order
        batch_body.append(stmt)
    batch_loop = cst.For(target=target, iter=loaders[iterator], body=cst.IndentedBlock(body=batch_body))
    as_epochs = cst.For(
        target=cst.Name("_"),
        iter=cst.parse_expression("range(1)"),
        body=cst.IndentedBlock(body=[batch_loop, *evaluation]),
    )
    return StepBudget(loop=loop, total=total, as_epochs=as_epochs, eval_every=eval_every, iterator=iterator)
