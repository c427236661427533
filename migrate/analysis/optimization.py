"""The optimizer-step section of a train loop, as Trainer arguments.

Plain PyTorch spells gradient clipping, mixed precision (autocast and GradScaler) and
gradient accumulation out by hand around `backward()` and `step()`. In Lightning they are
`gradient_clip_val`, `precision` and `accumulate_grad_batches`, and the Trainer performs
them at the same point of the step, so the hand-written versions must go from the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import call_name, code, dotted, expr_statement, method_call

_DEVICE_GENERIC_AUTOCAST = {"torch.autocast", "autocast", "torch.amp.autocast", "amp.autocast"}
_AUTOCAST = _DEVICE_GENERIC_AUTOCAST | {"torch.cuda.amp.autocast", "cuda.amp.autocast", "torch.cpu.amp.autocast"}
# Grad-mode contexts: the Trainer sets the grad mode of each stage itself.
GRAD_MODES = {
    "torch.no_grad", "torch.inference_mode", "no_grad", "inference_mode", "torch.set_grad_enabled",
    "set_grad_enabled", "torch.enable_grad", "enable_grad",
}
_GRAD_SCALERS = {"torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "amp.GradScaler", "GradScaler", "cuda.amp.GradScaler"}
_CLIPPING = {"clip_grad_norm_": "norm", "clip_grad_value_": "value"}
_BF16 = {"torch.bfloat16", "bfloat16"}
_FP16 = {"torch.float16", "torch.half", "float16", "half"}


@dataclass
class Autocast:
    precision: str  # "16-mixed" or "bf16-mixed"
    enabled: cst.BaseExpression | None  # `enabled=use_amp`: chosen at run time

    def trainer_value(self) -> cst.BaseExpression:
        """`"16-mixed"`, or `"16-mixed" if use_amp else "32-true"` when the original could turn it off."""
        mixed = cst.SimpleString(f'"{self.precision}"')
        if self.enabled is None:
            return mixed
        return cst.IfExp(test=self.enabled, body=mixed, orelse=cst.SimpleString('"32-true"'))


def _keyword(call: cst.Call, name: str, position: int | None = None) -> cst.BaseExpression | None:
    for index, arg in enumerate(call.args):
        if (arg.keyword is not None and arg.keyword.value == name) or (
            arg.keyword is None and not arg.star and index == position
        ):
            return arg.value
    return None


def autocast_of(expr: cst.BaseExpression) -> Autocast | None:
    """`torch.autocast(device_type=..., dtype=torch.bfloat16, enabled=flag)` and its older spellings."""
    name = call_name(expr)
    if name not in _AUTOCAST:
        return None
    generic = name in _DEVICE_GENERIC_AUTOCAST  # takes (device_type, dtype) positionally
    device_type = _keyword(expr, "device_type", 0 if generic else None)
    dtype = dotted(_keyword(expr, "dtype", 1 if generic else None))
    if dtype in _BF16:
        precision = "bf16-mixed"
    elif dtype in _FP16:
        precision = "16-mixed"
    elif dtype is None:
        on_cpu = "cpu" in name or m.matches(device_type, m.SimpleString('"cpu"') | m.SimpleString("'cpu'"))
        precision = "bf16-mixed" if on_cpu else "16-mixed"
    else:
        return None
    enabled = _keyword(expr, "enabled", None)
    if m.matches(enabled, m.Name("True")):
        enabled = None
    return Autocast(precision, enabled)


def context_autocasts(stmt: cst.CSTNode) -> list[Autocast] | None:
    """A `with` of only autocast and no_grad items: its autocasts (maybe none); None for any other."""
    if not isinstance(stmt, cst.With) or not isinstance(stmt.body, cst.IndentedBlock):
        return None
    found = []
    for item in stmt.items:
        if item.asname is not None:
            return None
        autocast = autocast_of(item.item)
        if autocast is not None:
            found.append(autocast)
        elif not (call_name(item.item) in GRAD_MODES or dotted(item.item) in GRAD_MODES):
            return None
    return found


def is_grad_scaler(expr: cst.BaseExpression | None) -> bool:
    return call_name(expr) in _GRAD_SCALERS


def scaler_enabled(expr: cst.Call) -> cst.BaseExpression | None:
    return _keyword(expr, "enabled", None)


def scaled_loss(expr: cst.BaseExpression, scalers: set[str]) -> cst.BaseExpression | None:
    """`scaler.scale(loss)` -> `loss`."""
    mc = method_call(expr)
    if mc and mc[1] == "scale" and dotted(mc[0]) in scalers and len(expr.args) == 1:
        return expr.args[0].value
    return None


def clipping(expr: cst.BaseExpression | None, model_name: str | None, resolve) -> tuple[cst.BaseExpression, str] | None:
    """`clip_grad_norm_(model.parameters(), max_norm)` -> (max_norm, "norm"); only the 2-norm
    over the whole model, which is what the Trainer clips."""
    name = call_name(expr) or ""
    algorithm = _CLIPPING.get(name.split(".")[-1])
    if algorithm is None or not expr.args:
        return None
    params = expr.args[0].value
    owner = method_call(params)
    if not (owner and owner[1] == "parameters" and not params.args and resolve(owner[0]) == model_name):
        return None
    value = _keyword(expr, "max_norm" if algorithm == "norm" else "clip_value", 1)
    norm_type = _keyword(expr, "norm_type", 2)
    if value is None or (norm_type is not None and code(norm_type) not in ("2", "2.0")):
        return None
    if any(arg.keyword is not None and arg.keyword.value not in ("max_norm", "clip_value", "norm_type") for arg in expr.args):
        return None
    return value, algorithm


def accumulation_interval(test: cst.BaseExpression, index_name: str | None, index_start) -> cst.BaseExpression | None:
    """`(i + 1) % k == 0` (or `i % k == 0` under `enumerate(..., 1)`) -> k."""
    if index_name is None or not m.matches(
        test,
        m.Comparison(
            left=m.BinaryOperation(operator=m.Modulo()),
            comparisons=[m.ComparisonTarget(operator=m.Equal(), comparator=m.Integer("0"))],
        ),
    ):
        return None
    counter = test.left.left
    if index_start is None:
        ok = m.matches(counter, m.BinaryOperation(left=m.Name(index_name), operator=m.Add(), right=m.Integer("1")))
    else:
        ok = m.matches(index_start, m.Integer("1")) and m.matches(counter, m.Name(index_name))
    return test.left.right if ok else None


def divided_loss(stmt: cst.CSTNode) -> tuple[str, cst.BaseExpression, cst.BaseExpression] | None:
    """`loss = expr / k` or `loss /= k` -> (loss, expr, k)."""
    expr = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
    if (
        isinstance(expr, cst.AugAssign)
        and isinstance(expr.operator, cst.DivideAssign)
        and isinstance(expr.target, cst.Name)
    ):
        return expr.target.value, expr.target, expr.value
    if (
        isinstance(expr, cst.Assign)
        and len(expr.targets) == 1
        and isinstance(expr.targets[0].target, cst.Name)
        and isinstance(expr.value, cst.BinaryOperation)
        and isinstance(expr.value.operator, cst.Divide)
    ):
        return expr.targets[0].target.value, expr.value.left, expr.value.right
    return None


def undivided(stmt: cst.SimpleStatementLine, name: str, full: str, dividend, divisor) -> list[cst.BaseStatement]:
    """`loss = expr / k` -> `full = expr` then `loss = full / k`: the step returns `full` for the
    Trainer to divide, and everything after still reads the divided value, bit for bit."""
    first = cst.SimpleStatementLine(
        body=[cst.Assign(targets=[cst.AssignTarget(cst.Name(full))], value=dividend)],
        leading_lines=stmt.leading_lines,
    )
    second = cst.SimpleStatementLine(
        body=[
            cst.Assign(
                targets=[cst.AssignTarget(cst.Name(name))],
                value=cst.BinaryOperation(left=cst.Name(full), operator=cst.Divide(), right=divisor),
            )
        ],
        trailing_whitespace=stmt.trailing_whitespace,
    )
    return [first, second]


def is_step_bookkeeping(stmt: cst.CSTNode, names: set[str], model_name: str | None, resolve) -> bool:
    """Statements an accumulation guard may hold: optimizer/scheduler/scaler calls and clipping."""
    expr = expr_statement(stmt)
    mc = method_call(expr)
    if mc and resolve(mc[0]) in names:
        return True
    return clipping(expr, model_name, resolve) is not None
