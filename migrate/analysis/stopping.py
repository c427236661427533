"""Recognises hand-written early stopping and best-weights saving on an epoch metric:

    best, bad_epochs = float("inf"), 0                       # before the epoch loop
    ...
    if val_loss < best - min_delta:                          # once per epoch, after validation
        best = val_loss
        bad_epochs = 0
        torch.save(model.state_dict(), "best.pt")
    else:
        bad_epochs += 1
        if bad_epochs >= patience:
            break

which is `EarlyStopping(monitor=..., mode="min", patience=patience, min_delta=min_delta)` and
`ModelCheckpoint(monitor=..., mode="min", save_top_k=1)`. Only exact translations are taken:
EarlyStopping counts an epoch as an improvement when `current - min_delta` beats the best
strictly (`<` for "min", `>` for "max"), starts from an infinite best, and stops once its wait
count reaches `patience`; a form that differs (`<=`, a finite starting best, a reset counter
that is not the one compared) is left to the generic epoch-statement handling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from migrate.analysis import printing
from migrate.analysis.nodes import call_name, code, dotted, expr_statement, find, is_zero_literal, names_used, simple_assign, small
from migrate.analysis.plan import Accumulator, Binding, StoppingPlan

_INFINITIES = {"math.inf", "np.inf", "numpy.inf", "torch.inf", "np.Inf", "np.PINF", "numpy.Inf"}
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_OPERATORS = {cst.LessThan: "<", cst.GreaterThan: ">", cst.LessThanEqual: "<=", cst.GreaterThanEqual: ">=",
              cst.Equal: "=="}


def infinity_sign(expr: cst.BaseExpression | None) -> int:
    """+1 for `float("inf")`, `math.inf`, `np.inf` ...; -1 for their negation; 0 otherwise."""
    if expr is None:
        return 0
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return -infinity_sign(expr.expression)
    if dotted(expr) in _INFINITIES:
        return 1
    if call_name(expr) == "float" and len(expr.args) == 1 and isinstance(expr.args[0].value, cst.SimpleString):
        text = expr.args[0].value.evaluated_value
        if isinstance(text, str):
            text = text.strip().lower()
            if text in ("inf", "+inf", "infinity", "+infinity"):
                return 1
            if text in ("-inf", "-infinity"):
                return -1
    return 0


def _operator(comparison: cst.Comparison) -> str | None:
    if len(comparison.comparisons) != 1:
        return None
    return _OPERATORS.get(type(comparison.comparisons[0].operator))


def _terms(expr: cst.BaseExpression, sign: int = 1) -> list[tuple[int, cst.BaseExpression]]:
    """`a - (b + c)` -> [(+1, a), (-1, b), (-1, c)]: a sum of signed terms."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        right = sign if isinstance(expr.operator, cst.Add) else -sign
        return _terms(expr.left, sign) + _terms(expr.right, right)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return _terms(expr.expression, -sign)
    return [(sign, expr)]


@dataclass
class Improvement:
    metric: str
    best: str
    mode: str
    min_delta: cst.BaseExpression | None


def improvement(test: cst.BaseExpression, metrics: set[str], bests: set[str]) -> Improvement | None:
    """`metric < best - d`, `best - metric > d`, `metric + d < best`, `metric > best + d`, ... as
    (metric, best, mode, min_delta); None when the test is anything else, non-strict included."""
    if not isinstance(test, cst.Comparison):
        return None
    op = _operator(test)
    if op not in ("<", ">"):
        return None
    terms = _terms(test.left) + [(-sign, term) for sign, term in _terms(test.comparisons[0].comparator)]
    metric = [i for i, (_, t) in enumerate(terms) if isinstance(t, cst.Name) and t.value in metrics]
    best = [i for i, (_, t) in enumerate(terms) if isinstance(t, cst.Name) and t.value in bests]
    if len(metric) != 1 or len(best) != 1 or terms[metric[0]][0] != -terms[best[0]][0]:
        return None
    rest = [term for i, term in enumerate(terms) if i not in (metric[0], best[0])]
    (metric_sign, metric_name), best_name = terms[metric[0]], terms[best[0]][1]
    if len(rest) > 1:
        return None
    if any(name in metrics or name in bests for _, t in rest for name in names_used(t)):
        return None
    if metric_sign < 0:  # `best - metric > d` reads as `metric - best < -d`
        op = _FLIP[op]
        rest = [(-s, t) for s, t in rest]
    # now: metric - best + s * D  <op>  0
    mode = "min" if op == "<" else "max"
    delta = None
    if rest:
        sign, delta = rest[0]
        # min: metric < best - min_delta (s = +1); max: metric > best + min_delta (s = -1)
        if (mode == "min") != (sign > 0):
            return None
    return Improvement(metric_name.value, best_name.value, mode, delta)


def _patience(test: cst.BaseExpression, counter: str) -> cst.BaseExpression | None:
    """`counter >= p` / `counter == p` -> p; `counter > p` -> p + 1 (also written the other way round)."""
    if not isinstance(test, cst.Comparison):
        return None
    op = _operator(test)
    left, right = test.left, test.comparisons[0].comparator
    if dotted(left) == counter:
        other = right
    elif dotted(right) == counter:
        other, op = left, _FLIP.get(op, op)
    else:
        return None
    if counter in names_used(other):
        return None
    right = other
    if op in (">=", "=="):
        return right
    if op == ">":
        if isinstance(right, cst.Integer):
            return cst.Integer(str(right.evaluated_value + 1))
        return cst.BinaryOperation(left=right, operator=cst.Add(), right=cst.Integer("1"))
    return None


def _is_break(stmt: cst.CSTNode) -> bool:
    return m.matches(stmt, m.SimpleStatementLine(body=[m.Break()]))


def _is_print(stmt: cst.CSTNode) -> bool:
    return printing.is_print(expr_statement(stmt))


def stop_check(stmt: cst.CSTNode, counter: str) -> cst.BaseExpression | None:
    """`if counter >= patience: [print(...)] break` -> patience."""
    if not isinstance(stmt, cst.If) or stmt.orelse is not None:
        return None
    body = list(stmt.body.body)
    if not body or not _is_break(body[-1]) or not all(_is_print(s) for s in body[:-1]):
        return None
    return _patience(stmt.test, counter)


def _saved_weights(stmt: cst.CSTNode, model: str | None) -> cst.BaseExpression | None:
    """`torch.save(model.state_dict(), path)` -> path."""
    expr = expr_statement(stmt)
    if call_name(expr) != "torch.save" or len(expr.args) != 2 or any(a.keyword for a in expr.args):
        return None
    state = expr.args[0].value
    if not m.matches(state, m.Call(func=m.Attribute(attr=m.Name("state_dict")), args=[])):
        return None
    if model is None or dotted(state.func.value) != model:
        return None
    return expr.args[1].value


def recognise(
    stmt: cst.BaseStatement,
    following: cst.BaseStatement | None,
    metrics: dict[str, Accumulator],
    bindings: dict[str, Binding],
    model: str | None,
) -> tuple[StoppingPlan, bool] | None:
    """The plan for an early-stopping / best-save statement, and whether it also took `following`
    (the `if counter >= patience: break` written after the if/else); None when `stmt` is not one."""
    if not isinstance(stmt, cst.If):
        return None
    bests = {name for name, b in bindings.items() if infinity_sign(b.value)}
    found = improvement(stmt.test, set(metrics), bests)
    if found is None or infinity_sign(bindings[found.best].value) != (1 if found.mode == "min" else -1):
        return None
    plan = StoppingPlan(metric=metrics[found.metric], mode=found.mode, best=found.best, min_delta=found.min_delta)
    zeros = {name for name, b in bindings.items() if b.value is not None and is_zero_literal(b.value)}
    best_set = False
    reset = None
    for inner in stmt.body.body:
        one = simple_assign(inner)
        if one and one[0] == found.best and dotted(one[1]) == found.metric and not best_set:
            best_set = True
        elif one and one[0] in zeros and is_zero_literal(one[1]) and reset is None:
            reset = one[0]
        elif (path := _saved_weights(inner, model)) is not None and plan.save_path is None:
            plan.save_path = path
        elif not _is_print(inner):
            return None
    if not best_set:
        return None
    took_following = False
    orelse = stmt.orelse
    if orelse is not None and not isinstance(orelse, cst.Else):
        return None  # elif
    counted = False
    for inner in orelse.body.body if orelse is not None else []:
        node = small(inner)
        if (
            reset is not None
            and isinstance(node, cst.AugAssign)
            and isinstance(node.operator, cst.AddAssign)
            and dotted(node.target) == reset
            and m.matches(node.value, m.Integer("1"))
            and not counted
        ):
            counted = True
        elif counted and plan.patience is None and (patience := stop_check(inner, reset)) is not None:
            plan.patience = patience
        elif not _is_print(inner):
            return None
    if reset is not None:
        if not counted:
            return None
        if plan.patience is None and following is not None:
            plan.patience = stop_check(following, reset)
            took_following = plan.patience is not None
        if plan.patience is None:
            return None
        plan.counter = reset
    if plan.patience is None and plan.save_path is None:
        return None  # best tracking alone: the generic epoch statement handles it
    if plan.patience is None and plan.min_delta is not None:
        return None  # ModelCheckpoint alone has no min_delta
    _checkpoint_location(plan, bindings)
    plan.statements = [stmt, following] if took_following else [stmt]
    return plan, took_following


def _checkpoint_location(plan: StoppingPlan, bindings: dict[str, Binding]) -> None:
    """`"out/best.pt"` (or a name bound to it) -> dirpath "out", filename "best"."""
    path = plan.save_path
    if path is None:
        return
    if isinstance(path, cst.Name):
        binding = bindings.get(path.value)
        if binding is None or not isinstance(binding.value, cst.SimpleString):
            return
        plan.path_name = path.value
        path = binding.value
    if not isinstance(path, cst.SimpleString) or not isinstance(path.evaluated_value, str):
        return
    text = path.evaluated_value
    directory, name = os.path.split(text)
    stem = os.path.splitext(name)[0]
    if not stem or "{" in stem or "}" in stem:
        plan.path_name = None
        return
    plan.checkpoint_dir, plan.checkpoint_name = directory or ".", stem


def reload_statement(stmt: cst.CSTNode, plan: StoppingPlan, model: str | None) -> bool:
    """`model.load_state_dict(torch.load(path, ...))` for the path the best weights were saved to."""
    expr = expr_statement(stmt)
    if plan.save_path is None or model is None or not m.matches(
        expr, m.Call(func=m.Attribute(attr=m.Name("load_state_dict")), args=[m.Arg(keyword=None)])
    ):
        return False
    if dotted(expr.func.value) != model:
        return False
    loaded = expr.args[0].value
    if call_name(loaded) != "torch.load" or not loaded.args or loaded.args[0].keyword is not None:
        return False
    return code(loaded.args[0].value) == code(plan.save_path)


def reads_path(stmt: cst.CSTNode, plan: StoppingPlan) -> bool:
    """Whether `stmt` loads from the path the original saved the best weights to."""
    if plan.save_path is None:
        return False
    target = code(plan.save_path)
    return any(
        call_name(call) == "torch.load" and call.args and code(call.args[0].value) == target
        for call in find(stmt, cst.Call)
    )
