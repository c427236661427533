"""Recognises the loops: batch loops (train / eval steps) and the blocks around them
(accumulator set-up, finalisation, prints, returns), inline or inside helper functions."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m

from migrate.analysis import device as dev
from migrate.analysis import optimization
from migrate.analysis import printing
from migrate.analysis import tensorboard as tb
from migrate.analysis.epoch import EpochStatement, gathered_accuracy, is_housekeeping
from migrate.analysis.nodes import (
    call_name,
    code,
    free_names,
    dotted,
    expr_statement,
    find,
    has_backward,
    is_zero_literal,
    method_call,
    names_stored,
    names_used,
    pairwise_assign,
    simple_assign,
    small,
    strip_item,
    target_names,
    unique_name,
)
from migrate.analysis.plan import (
    Accumulator,
    Attribute,
    LogItem,
    ManualOptimization,
    OptimizerPlan,
    Span,
    StepPlan,
)
from migrate.analysis.positions import Positions
from migrate.findings import Finding, Severity
from migrate.substitution import substitute

_TQDM = {"tqdm", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "auto.tqdm", "notebook.tqdm"}
SCHEDULERS = {
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "LambdaLR",
    "MultiplicativeLR",
    "CyclicLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "ConstantLR",
    "PolynomialLR",
    "SequentialLR",
    "ChainedScheduler",
}


@dataclass
class Context:
    """What the recognisers share: where nodes are, the script's roles, and the findings."""

    path: str
    positions: Positions
    functions: dict[str, cst.FunctionDef]
    optimizer_names: set[str] = field(default_factory=set)
    scheduler_names: set[str] = field(default_factory=set)
    device_names: set[str] = field(default_factory=set)
    model_name: str | None = None
    findings: list[Finding] = field(default_factory=list)
    attributes: dict[str, Attribute] = field(default_factory=dict)
    optimizer: OptimizerPlan | None = None
    scheduler_interval: str | None = None
    scheduler_monitor: cst.BaseExpression | None = None
    scheduler_step: cst.CSTNode | None = None  # the `scheduler.step(metric)` statement
    used_functions: set[str] = field(default_factory=set)
    epoch_statements: list[EpochStatement] = field(default_factory=list)
    scaler_names: set[str] = field(default_factory=set)
    writer_names: set[str] = field(default_factory=set)
    step_counters: set[str] = field(default_factory=set)
    trainer_args: dict[str, cst.BaseExpression] = field(default_factory=dict)
    optimizers: dict[str, OptimizerPlan] = field(default_factory=dict)  # the driver's, by name
    model_names: set[str] = field(default_factory=set)  # every network an optimizer trains
    known: set[str] = field(default_factory=set)  # names an epoch-end hook can resolve
    manual: ManualOptimization | None = None

    def is_model(self, name: str | None) -> bool:
        return name is not None and (name == self.model_name or name in self.model_names)

    def span(self, node: cst.CSTNode) -> Span:
        return self.positions.span(node)

    def add(self, node: cst.CSTNode, code: str, severity: Severity, message: str) -> None:
        span = self.span(node)
        self.findings.append(Finding(self.path, span.line, span.col, code, severity, message))

    def review(self, node: cst.CSTNode, message: str) -> None:
        self.add(
            node,
            "MIG301",
            Severity.NOT_CONVERTED,
            f"not converted: {message}; kept with `# migrate: review`",
        )


@dataclass
class Env:
    """Names inside a helper function, mapped to the caller's expressions."""

    subst: dict[str, cst.BaseExpression] = field(default_factory=dict)

    def resolve(self, expr: cst.BaseExpression) -> cst.BaseExpression:
        if isinstance(expr, cst.Name) and expr.value in self.subst:
            return self.subst[expr.value]
        if isinstance(expr, cst.Attribute):
            base = self.resolve(expr.value)
            if base is not expr.value:
                return expr.with_changes(value=base)
        return expr

    def root(self, expr: cst.BaseExpression | None) -> str | None:
        return dotted(self.resolve(expr)) if expr is not None else None


def unwrap_iter(expr: cst.BaseExpression):
    """Strips tqdm(...) and enumerate(...): (inner iterable, has enumerate, start, had tqdm)."""
    enum, start, bar = False, None, False
    while isinstance(expr, cst.Call) and expr.args:
        name = call_name(expr)
        if name in _TQDM:
            bar = True
        elif name == "enumerate":
            enum = True
            for i, arg in enumerate(expr.args[1:], 1):
                if (arg.keyword is None or arg.keyword.value == "start") and not is_zero_literal(arg.value):
                    start = arg.value
        else:
            break
        expr = expr.args[0].value
    return expr, enum, start, bar


def is_range_loop(node: cst.For) -> bool:
    inner, _, _, _ = unwrap_iter(node.iter)
    return call_name(inner) in ("range", "trange", "tqdm.trange") or call_name(node.iter) in (
        "trange",
        "tqdm.trange",
    )


def epoch_range(node: cst.For) -> tuple[cst.BaseExpression, cst.BaseExpression | None] | None:
    """`range(n)` -> (n, None); `range(1, n + 1)` -> (n, 1); `range(a, b)` -> (b - a, a)."""
    inner, _, _, _ = unwrap_iter(node.iter)
    if call_name(inner) not in ("range", "trange", "tqdm.trange"):
        return None
    args = [a.value for a in inner.args if a.keyword is None]
    if len(args) == 1:
        return args[0], None
    if len(args) == 2:
        start, stop = args
        if (
            m.matches(stop, m.BinaryOperation(operator=m.Add()))
            and isinstance(start, cst.Integer)
            and isinstance(stop.right, cst.Integer)
            and stop.right.evaluated_value == start.evaluated_value
        ):
            return stop.left, start
        if is_zero_literal(start):
            return stop, None
        return cst.BinaryOperation(left=stop, operator=cst.Subtract(), right=start), start
    return None


def no_grad_with(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.With) and all(
        call_name(item.item) in optimization.GRAD_MODES or dotted(item.item) in optimization.GRAD_MODES for item in stmt.items
    )


def function_training(fn: cst.FunctionDef) -> bool:
    return bool(find(fn, cst.For)) and has_backward(fn)


def function_evaluates(fn: cst.FunctionDef) -> bool:
    return bool(find(fn, cst.For)) and not has_backward(fn)


def bind_call(fn: cst.FunctionDef, call: cst.Call) -> dict[str, cst.BaseExpression] | None:
    """Parameter name -> argument expression (defaults included), or None when it cannot bind."""
    params = list(fn.params.posonly_params) + list(fn.params.params)
    kwonly = list(fn.params.kwonly_params)
    result: dict[str, cst.BaseExpression] = {}
    positional = [a for a in call.args if a.keyword is None]
    if any(a.star for a in call.args):
        return None
    if len(positional) > len(params):
        return None
    for param, arg in zip(params, positional):
        result[param.name.value] = arg.value
    names = {p.name.value: p for p in params + kwonly}
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value not in names:
                return None
            result[arg.keyword.value] = arg.value
    for param in params + kwonly:
        if param.name.value not in result:
            if param.default is None:
                return None
            result[param.name.value] = param.default
    return result


@dataclass
class Block:
    """The state while reading one block (a helper's body, or the epoch loop's body)."""

    env: Env
    stage: str  # "train" for blocks that train, else "val" (the caller may turn it into "test")
    accs: dict[str, Accumulator] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)  # name -> "dataset" | "batches"
    steps: list[StepPlan] = field(default_factory=list)
    leftovers: list[cst.BaseStatement] = field(default_factory=list)
    returns: list[cst.BaseExpression] = field(default_factory=list)
    prints: list[cst.BaseExpression] = field(default_factory=list)
    calls_eval: bool = False
    count_names: set[str] = field(default_factory=set)
    bars: dict[str, cst.BaseExpression] = field(default_factory=dict)  # pbar = tqdm(loader)
    epoch_end: list[cst.BaseStatement] = field(default_factory=list)  # kept as they are, once per epoch
    # `hidden = model.init_hidden(bsz)` before a batch loop that reads and rebinds `hidden`
    carried: dict[str, cst.BaseExpression] = field(default_factory=dict)
    carried_from: dict[int, tuple[str, cst.BaseExpression]] = field(default_factory=dict)  # id(stmt) -> that
    # Tried on a statement nothing else recognised, before it is kept for review; True: handled.
    unrecognised: Callable[[cst.BaseStatement], bool] | None = None
    epoch: bool = False  # the epoch loop's own body
    computed: dict[str, EpochStatement] = field(default_factory=dict)  # name -> the epoch-end statement binding it


def _divisor_kind(expr: cst.BaseExpression, block: Block) -> str | None:
    if isinstance(expr, cst.Name):
        if expr.value in block.sizes:
            return block.sizes[expr.value]
        acc = block.accs.get(expr.value)
        if acc is not None and acc.is_count:
            return "dataset"
    if call_name(expr) == "len" and expr.args:
        inner = expr.args[0].value
        if isinstance(inner, cst.Attribute) and inner.attr.value in ("dataset", "sampler"):
            return "dataset"
        return "dataset" if not _looks_like_loader(inner) else "batches"
    if call_name(expr) == "float" and expr.args:
        return _divisor_kind(expr.args[0].value, block)
    return None


def _looks_like_loader(expr: cst.BaseExpression) -> bool:
    name = (dotted(expr) or "").lower()
    return "loader" in name or name.endswith("_dl") or name in ("dl", "dataloader")


def _finalise(block: Block, name: str, divisor: cst.BaseExpression) -> bool:
    acc = block.accs.get(name)
    kind = _divisor_kind(divisor, block)
    if acc is None or kind is None:
        return False
    acc.final = kind
    return True


def _list_mean(value: cst.BaseExpression, block: Block) -> str | None:
    """`torch.mean(torch.tensor(acc))`, `np.mean(acc)`, `sum(acc) / len(acc)`, `torch.stack(acc).mean()`."""
    name = call_name(value)
    if name in ("torch.mean", "np.mean", "numpy.mean", "statistics.mean", "mean") and value.args:
        inner = value.args[0].value
        if (
            call_name(inner) in ("torch.tensor", "torch.stack", "np.array", "torch.Tensor")
            and inner.args
        ):
            inner = inner.args[0].value
        if isinstance(inner, cst.Name) and inner.value in block.accs:
            return inner.value
    mc = method_call(value)
    if (
        mc
        and mc[1] == "mean"
        and call_name(mc[0]) in ("torch.stack", "torch.tensor")
        and mc[0].args
    ):
        inner = mc[0].args[0].value
        if isinstance(inner, cst.Name) and inner.value in block.accs:
            return inner.value
    if m.matches(value, m.BinaryOperation(operator=m.Divide(), left=m.Call(func=m.Name("sum")))):
        inner = value.left.args[0].value
        if isinstance(inner, cst.Name) and inner.value in block.accs:
            return inner.value
    return None


def _is_count(expr: cst.BaseExpression, names=frozenset()) -> bool:
    """`len(y)`, `y.size(0)`, `y.shape[0]`, `labels.numel()`, or a name bound to one in the loop."""
    if isinstance(expr, cst.Name) and expr.value in names:
        return True
    if call_name(expr) == "len":
        return True
    mc = method_call(expr)
    if (
        mc
        and mc[1] in ("size", "numel")
        and (not expr.args or m.matches(expr.args[0].value, m.Integer("0")))
    ):
        return True
    return m.matches(expr, m.Subscript(value=m.Attribute(attr=m.Name("shape"))))


def _batch_len(target: cst.BaseAssignTargetExpression) -> cst.BaseExpression:
    if (
        isinstance(target, (cst.Tuple, cst.List))
        and target.elements
        and isinstance(target.elements[0].value, cst.Name)
    ):
        first: cst.BaseExpression = target.elements[0].value
    elif isinstance(target, cst.Name):
        first = cst.Subscript(
            value=target, slice=[cst.SubscriptElement(cst.Index(cst.Integer("0")))]
        )
    else:
        first = cst.Name("batch")
    return cst.Call(func=cst.Name("len"), args=[cst.Arg(first)])


class Recogniser:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- a loop over a DataLoader --------------------------------------------------------------
    def _runs_model(self, loop: cst.For, block: Block) -> bool:
        """A loop whose body calls the model (and trains, in a training block): a batch loop."""
        if block.stage == "train" and not has_backward(loop):
            return False
        return any(self.ctx.is_model(block.env.root(call.func)) for call in find(loop.body, cst.Call))

    def step_loop(self, loop: cst.For, block: Block, train: bool) -> StepPlan:
        ctx, env = self.ctx, block.env
        inner, enum, start, bar = unwrap_iter(loop.iter)
        if call_name(inner) == "range":
            # The positions become a loader of their own: one int per step, in the same order. Its
            # own generator keeps the seed a DataLoader draws per pass off the global random stream.
            template = cst.parse_expression(
                "torch.utils.data.DataLoader(positions, batch_size=None, generator=torch.Generator())"
            )
            inner = template.with_changes(
                args=[template.args[0].with_changes(value=substitute(inner, env.subst)), *template.args[1:]]
            )
        if isinstance(inner, cst.Name) and inner.value in block.bars:
            inner, enum2, start2, _ = unwrap_iter(block.bars[inner.value])
            enum, start, bar = enum or enum2, start if start is not None else start2, True
        target: cst.BaseAssignTargetExpression = loop.target
        index_name = None
        if (
            enum
            and isinstance(target, cst.Tuple)
            and len(target.elements) == 2
            and isinstance(target.elements[0].value, cst.Name)
        ):
            index_name = target.elements[0].value.value
            target = target.elements[1].value
        elif enum:
            ctx.review(loop, "enumerate() target")
        if bar:
            ctx.add(
                loop,
                "MIG108",
                Severity.INFO,
                "tqdm progress bar replaced by the Trainer's progress bar",
            )
        step = StepPlan(
            stage="train" if train else block.stage if block.stage != "train" else "val",
            loader=env.resolve(inner),
            target=target,
            index_name=index_name,
            index_start=start,
            items=[],
            subst=env.subst,
            loss_name=None,
            span=ctx.span(loop),
            origin="inline",
            called_eval=block.calls_eval,
            manual=self._manual(loop, env) if train else None,
        )
        if step.manual is not None and ctx.manual is None:
            ctx.manual = step.manual
        batch_len = _batch_len(target)
        assigned: set[str] = set(target_names(target))
        for stmt in loop.body.body:
            self._step_statement(stmt, step, block, batch_len, assigned)
            assigned |= names_stored(stmt) if not isinstance(stmt, cst.If) else set()
        self._carry(step, block)
        return step

    def _carry(self, step: StepPlan, block: Block) -> None:
        """The step reads and rebinds `self.<state>` where the loop had a local name."""
        carried = {name: value for name, value in block.carried.items() if name in names_used(step.items)}
        if not carried:
            return
        prefix = "" if step.stage == "train" else f"{step.stage}_"
        renamed = {name: cst.parse_expression(f"self.{prefix}{name}") for name in carried}
        step.items = [
            item if isinstance(item, LogItem) else _rename_stored(substitute(item, renamed), renamed)
            for item in step.items
        ]
        step.carried = [(f"{prefix}{name}", substitute(value, block.env.subst)) for name, value in carried.items()]
    def _manual(self, loop: cst.For, env: Env) -> ManualOptimization | None:
        """Two or more of the driver's optimizers stepped in one loop body (a GAN's D and G
        steps): their `zero_grad`/`backward`/`step` calls in order, or None."""
        ctx = self.ctx
        found = ManualOptimization(optimizers=[], handles={})
        for call in find(loop.body, cst.Call):
            mc = method_call(call)
            if mc is None:
                continue
            base, method = mc
            if method == "backward":
                found.sequence.append(("backward", dotted(base) or code(base)))
                continue
            root = env.root(base)
            if method not in ("step", "zero_grad") or root not in ctx.optimizer_names:
                continue
            opt = ctx.optimizers.get(root)
            if not isinstance(base, cst.Name) or opt is None or opt.model is None or "." in opt.model:
                return None  # stepped through an expression, or built from something else than one network
            found.sequence.append((method, root))
            found.handles.setdefault(root, base.value)
            if method == "step" and root not in found.optimizers:
                found.optimizers.append(root)
        return found if len(found.optimizers) >= 2 else None

    def _step_statement(
        self, stmt, step: StepPlan, block: Block, batch_len, assigned: set[str]
    ) -> None:
        ctx, env = self.ctx, block.env
        if tb.is_counter_step(stmt, ctx.step_counters):
            ctx.add(stmt, "MIG146", Severity.INFO, "step counter removed: the Trainer counts steps (self.global_step)")
            return
        stmt = self._logging_call(stmt)
        expr = expr_statement(stmt)
        mc = method_call(expr)
        if mc and isinstance(mc[0], cst.Name) and mc[0].value in block.bars:
            if mc[1] == "set_postfix" and self._postfix(expr, step, block, assigned):
                ctx.add(stmt, "MIG108", Severity.INFO,
                        f"{mc[0].value}.set_postfix() replaced by prog_bar=True on the metrics it showed")
                return
            ctx.add(stmt, "MIG108", Severity.INFO, f"progress-bar call {mc[0].value}.{mc[1]}() removed")
            return
        meter = block.accs.get(f"{dotted(mc[0])}.avg") if mc and mc[1] == "update" and expr.args else None
        if meter is not None and meter.kind == "meter":
            self._meter_update(stmt, expr, meter, step)
            return
        if step.manual is not None and mc and (
            mc[1] == "backward"
            or (mc[1] in ("zero_grad", "step") and env.root(mc[0]) in step.manual.handles)
            or (mc[1] == "step" and env.root(mc[0]) in ctx.scheduler_names)
        ):
            # manual optimization: the step runs the user's own calls, in their order
            if mc[1] == "backward":
                step.loss_name = dotted(mc[0])
            step.items.append(stmt)
            return
        if mc and mc[1] == "zero_grad":
            return
        autocasts = optimization.context_autocasts(stmt)
        if autocasts:
            self._autocast(stmt, autocasts)
            for inner in stmt.body.body:
                self._step_statement(inner, step, block, batch_len, assigned)
                assigned |= names_stored(inner)
            return
        if mc and mc[1] == "backward":
            loss = optimization.scaled_loss(mc[0], ctx.scaler_names)
            step.loss_name = dotted(loss if loss is not None else mc[0])
            if expr.args:
                ctx.add(
                    stmt,
                    "MIG302",
                    Severity.NOT_CONVERTED,
                    f"not converted: backward with arguments ({step.loss_name}.backward(...)); the Trainer calls backward() without them",
                )
            return
        if mc and mc[1] == "step" and env.root(mc[0]) in ctx.optimizer_names:
            return
        if mc and mc[1] in ("scale", "unscale_", "step", "update") and env.root(mc[0]) in ctx.scaler_names:
            return
        if step.stage == "train" and step.loss_name and self._clipping(stmt, expr, env):
            return
        if step.stage == "train" and isinstance(stmt, cst.If) and self._accumulation(stmt, step, block, batch_len, assigned):
            return
        if mc and mc[1] == "step" and env.root(mc[0]) in ctx.scheduler_names:
            step.step_schedulers.append(env.root(mc[0]))
            return
        if mc and mc[1] in ("train", "eval") and ctx.is_model(env.root(mc[0])):
            return
        if dev.is_cuda_housekeeping(expr):
            ctx.add(
                stmt,
                "MIG105",
                Severity.INFO,
                "CUDA housekeeping call removed (the Trainer manages devices)",
            )
            return
        if isinstance(stmt, cst.If) and (constant := _constant_test(env.resolve(stmt.test))) is not None:
            # `if train:` in a helper called with train=True for one loop and False for another
            branch = stmt.body.body if constant else (stmt.orelse.body.body if isinstance(stmt.orelse, cst.Else) else [])
            for inner in branch:
                self._step_statement(inner, step, block, batch_len, assigned)
                assigned |= names_stored(inner)
            return
        if isinstance(stmt, cst.If) and self._scheduler_guard(stmt, step, env):
            return
        if isinstance(stmt, cst.If) and self._periodic(stmt, step, block, assigned):
            return
        counted = simple_assign(stmt)
        if counted and _is_count(counted[1]):
            block.count_names.add(counted[0])
        node = small(stmt)
        if (
            isinstance(node, cst.AugAssign)
            and isinstance(node.operator, cst.AddAssign)
            and isinstance(node.target, cst.Name)
        ):
            name = node.target.value
            if name not in assigned:
                if m.matches(node.value, m.Integer("1")):
                    block.accs.pop(name, None)
                    block.sizes[name] = "batches"  # `n_batches += 1`: a divisor, not a metric
                    return
                acc = block.accs.setdefault(name, Accumulator(name))
                if _is_count(node.value, block.count_names):
                    acc.is_count = True
                    return
                value = strip_item(node.value)
                unscaled, weight = None, batch_len
                if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
                    if _is_count(value.right, block.count_names):
                        unscaled = value.left
                    elif _is_count(value.left, block.count_names):  # `len(data) * loss`
                        unscaled, weight = value.right, value.left
                    acc.weighted = unscaled is not None
                step.items.append(
                    LogItem(value=value, accumulator=acc, batch_len=weight, unscaled=unscaled)
                )
                ctx.add(
                    stmt, "MIG107", Severity.INFO, f"accumulation into {name} logged with self.log"
                )
                return
        if mc and mc[1] == "append" and isinstance(mc[0], cst.Name) and mc[0].value in block.accs:
            acc = block.accs[mc[0].value]
            acc.kind = "list"
            step.items.append(
                LogItem(value=strip_item(expr.args[0].value), accumulator=acc, batch_len=batch_len)
            )
            ctx.add(
                stmt, "MIG107", Severity.INFO, f"per-batch list {acc.name} logged with self.log"
            )
            return
        if printing.is_print(expr):
            self._print_logs(expr, step, assigned, prog_bar=True)
            ctx.add(
                stmt,
                "MIG108",
                Severity.INFO,
                "per-batch print replaced by self.log(..., prog_bar=True)",
            )
            return
        if isinstance(stmt, (cst.SimpleStatementLine,)) and any(
            isinstance(s, (cst.Break, cst.Continue, cst.Return)) for s in stmt.body
        ):
            ctx.review(stmt, "control flow inside the batch loop")
            step.reviews.append((stmt, "control flow inside the batch loop"))
        step.items.append(stmt)

    def _meter_update(self, stmt, expr: cst.Call, meter: Accumulator, step: StepPlan) -> None:
        """`meter.update(value, n)`: `meter.avg` is the n-weighted mean of the values, which is
        what self.log computes with batch_size=n."""
        value = strip_item(expr.args[0].value)
        weight = expr.args[1].value if len(expr.args) > 1 else None
        meter.final = "dataset" if weight is not None else "batches"
        step.items.append(LogItem(value=value, accumulator=meter, batch_len=weight, unscaled=value))
        self.ctx.add(stmt, "MIG107", Severity.INFO, f"running average {meter.name} logged with self.log")

    def _postfix(self, expr: cst.Call, step: StepPlan, block: Block, assigned: set[str]) -> bool:
        """`pbar.set_postfix(loss=...)`: the metrics shown go to the Trainer's progress bar."""
        shown = False
        for arg in expr.args:
            if arg.keyword is None:
                continue
            value = arg.value
            if isinstance(value, cst.FormattedString) and len(value.parts) == 1 and isinstance(
                value.parts[0], cst.FormattedStringExpression
            ):
                value = value.parts[0].expression
            value = strip_item(value)
            acc = block.accs.get(dotted(value) or "")
            if acc is not None:
                acc.prog_bar = shown = True
            elif isinstance(value, cst.Name) and value.value in assigned:
                step.items.append(LogItem(value=value, label_hint=arg.keyword.value, prog_bar=True))
                shown = True
        return shown

    def _logging_call(self, stmt):
        """A call to a hand-made experiment logger: a SummaryWriter call comes back as the Lightning
        logging call that replaces it; a wandb call stays as it is, with a warning; else `stmt`."""
        ctx = self.ctx
        if (call_name(expr_statement(stmt)) or "").startswith("wandb."):
            ctx.add(stmt, "MIG204", Severity.WARNING,
                    "wandb call kept as it is, where the loop ran it; a WandbLogger "
                    "(lightning.pytorch.loggers, with --target lightning) and self.log would be the Lightning way")
        logged = tb.logged(stmt, ctx.writer_names, ctx.step_counters)
        if logged is None:
            return stmt
        ctx.positions.alias(logged, stmt)
        ctx.add(stmt, "MIG145", Severity.INFO, f"SummaryWriter call replaced by {code(logged.body[0].value.func)}(...)")
        return logged

    def _autocast(self, stmt: cst.With, autocasts: list[optimization.Autocast]) -> None:
        chosen = autocasts[0].trainer_value()
        current = self.ctx.trainer_args.setdefault("precision", chosen)
        if code(current) != code(chosen):
            self.ctx.add(stmt, "MIG203", Severity.WARNING,
                         f"autocast here differs from the training step's; the Trainer runs every step with precision={code(current)}")
            return
        self.ctx.add(stmt, "MIG141", Severity.INFO, f"autocast replaced by Trainer(precision={code(chosen)})")

    def _clipping(self, stmt, expr, env: Env) -> bool:
        found = optimization.clipping(expr, self.ctx.model_name, env.root)
        if found is None or not expr_statement(stmt):
            return False
        value, algorithm = found
        args = self.ctx.trainer_args
        args["gradient_clip_val"] = env.resolve(value)
        if algorithm == "value":
            args["gradient_clip_algorithm"] = cst.SimpleString('"value"')
        self.ctx.add(stmt, "MIG140", Severity.INFO,
                     f"gradient clipping moved to Trainer(gradient_clip_val={code(env.resolve(value))}"
                     + (', gradient_clip_algorithm="value")' if algorithm == "value" else ")"))
        return True

    def _accumulation(self, stmt: cst.If, step: StepPlan, block: Block, batch_len, assigned: set[str]) -> bool:
        """`loss = loss / k` ... `if (i + 1) % k == 0: optimizer.step(); optimizer.zero_grad()`."""
        ctx, env = self.ctx, block.env
        interval = optimization.accumulation_interval(stmt.test, step.index_name, step.index_start)
        if interval is None or stmt.orelse is not None or not step.loss_name:
            return False
        names = ctx.optimizer_names | ctx.scheduler_names | ctx.scaler_names
        body = list(stmt.body.body)
        if not body or not all(optimization.is_step_bookkeeping(s, names, ctx.model_name, env.root) for s in body):
            return False
        division = next(
            (
                (i, found)
                for i, item in enumerate(step.items)
                if isinstance(item, cst.SimpleStatementLine)
                and (found := optimization.divided_loss(item))
                and found[0] == step.loss_name
                and code(found[2]) == code(interval)
            ),
            None,
        )
        if division is None:
            return False  # undivided: the Trainer's accumulation would average, the original sums
        index, (name, dividend, divisor) = division
        full = unique_name(f"full_{name}", assigned | set(names_used(step.items[index:])))
        step.items[index : index + 1] = optimization.undivided(step.items[index], name, full, dividend, divisor)
        step.loss_name = full
        ctx.trainer_args["accumulate_grad_batches"] = env.resolve(interval)
        ctx.add(stmt, "MIG143", Severity.INFO,
                f"gradient accumulation moved to Trainer(accumulate_grad_batches={code(env.resolve(interval))}); "
                f"training_step returns the undivided {full} and the Trainer divides it")
        for inner in body:
            self._step_statement(inner, step, block, batch_len, assigned)
        return True

    def _scheduler_guard(self, stmt: cst.If, step: StepPlan, env: Env) -> bool:
        """`if scheduler: scheduler.step()`: dead when the scheduler is None, per-batch otherwise."""
        if stmt.orelse is not None or len(stmt.body.body) != 1:
            return False
        mc = method_call(expr_statement(stmt.body.body[0]))
        if not (mc and mc[1] == "step" and dotted(mc[0]) == dotted(stmt.test)):
            return False
        resolved = env.root(stmt.test)
        if resolved == "None":
            return True
        if resolved in self.ctx.scheduler_names:
            step.step_schedulers.append(resolved)
            return True
        return False

    def _periodic(self, stmt: cst.If, step: StepPlan, block: Block, assigned: set[str]) -> bool:
        """`if batch_idx % N == 0: print(...)`: logging every N steps."""
        test = stmt.test
        if not m.matches(
            test,
            m.Comparison(
                left=m.BinaryOperation(operator=m.Modulo()),
                comparisons=[m.ComparisonTarget(operator=m.Equal(), comparator=m.Integer())],
            ),
        ):
            return False
        phase_zero = m.matches(test.comparisons[0].comparator, m.Integer("0"))
        left = test.left.left
        if isinstance(left, cst.BinaryOperation):
            left = left.left
        if dotted(left) not in (step.index_name, *self.ctx.step_counters) or stmt.orelse is not None:
            return False
        interval = block.env.resolve(test.left.right)
        body = list(stmt.body.body)
        if not any(printing.is_print(expr_statement(s)) for s in body):
            return False
        local: set[str] = set()
        before = len(step.items)
        for inner in body:
            expr = expr_statement(inner)
            if printing.is_print(expr):
                self._print_logs(
                    expr,
                    step,
                    assigned - local,
                    prog_bar=True,
                    also={step.loss_name} if step.loss_name else set(),
                )
                continue
            pairs = pairwise_assign(inner)
            if pairs is not None:
                for name, value in pairs:
                    acc = block.accs.get(name)
                    if acc is not None and is_zero_literal(value):
                        # a running total printed and reset every N batches: the print shows the loss
                        step.items = [i for i in step.items if not (isinstance(i, LogItem) and i.accumulator is acc)]
                        before = min(before, len(step.items))
                        for text, piece in printing.pieces(expr_statement(body[0])) if printing.is_print(expr_statement(body[0])) else []:
                            if name in names_used(piece) and step.loss_name:
                                step.items.append(LogItem(value=cst.Name(step.loss_name),
                                                          label_hint=printing.label(text) or "loss", prog_bar=True))
                                break
                local |= names_stored(inner)
                continue
            if (
                isinstance(inner, cst.If)
                and len(inner.body.body) == 1
                and m.matches(inner.body.body[0], m.SimpleStatementLine(body=[m.Break()]))
                and inner.orelse is None
                and test.left.left is left
                and phase_zero
                and step.index_start is None
            ):
                step.limit_batches = cst.IfExp(
                    test=block.env.resolve(inner.test),
                    body=cst.Integer("1"),
                    orelse=cst.Name("None"),
                )
                continue
            self.ctx.review(inner, "statement inside a periodic print block")
            step.items.append(inner)
            step.reviews.append((inner, "statement inside a periodic print block"))
        step.log_every = interval
        self.ctx.add(
            stmt,
            "MIG108",
            Severity.INFO,
            "periodic print replaced by self.log(..., prog_bar=True) and log_every_n_steps",
        )
        return True

    def _print_logs(
        self, expr, step: StepPlan, assigned: set[str], prog_bar: bool, also: set[str] = frozenset()
    ) -> None:
        seen = {item.label_hint for item in step.items if isinstance(item, LogItem)}
        for text, value in printing.pieces(expr):
            value = strip_item(value)
            if not isinstance(value, cst.Name):
                continue
            if value.value not in assigned and value.value not in also:
                continue
            if value.value in target_names(step.target) or value.value in (step.index_name, *self.ctx.step_counters):
                continue
            name = printing.label(text) or value.value
            if name in seen:
                continue
            seen.add(name)
            step.items.append(LogItem(value=value, label_hint=name, prog_bar=prog_bar))

    # --- a block: a helper's body or the epoch loop's body ------------------------------------
    def block(self, stmts, block: Block) -> None:
        block.carried_from.update(_carried_state(stmts))
        for stmt in stmts:
            self.statement(stmt, block)
        self._labels(block)

    def _carried(self, stmt, block: Block) -> bool:
        found = block.carried_from.get(id(stmt))
        if found is None:
            return False
        name, value = found
        block.carried[name] = value
        self.ctx.add(stmt, "MIG149", Severity.INFO,
                     f"{name}, carried from batch to batch, lives on the module and starts each epoch "
                     "from this value (on_*_epoch_start)")
        return True

    def statement(self, stmt, block: Block) -> None:
        ctx, env = self.ctx, block.env
        if self._carried(stmt, block):
            return
        stmt = self._logging_call(stmt)
        if block.epoch and self._epoch_computation(stmt, block):
            return
        autocasts = optimization.context_autocasts(stmt)
        if autocasts is not None:
            if autocasts:
                self._autocast(stmt, autocasts)
            for inner in stmt.body.body:
                self.statement(inner, block)
            return
        if isinstance(stmt, cst.For):
            if is_range_loop(stmt) and self._runs_model(stmt, block):
                # `for i in range(0, data.size(0) - 1, bptt)`: chunks of one long sequence
                block.steps.append(self.step_loop(stmt, block, has_backward(stmt)))
                return
            if is_range_loop(stmt):
                ctx.review(stmt, "nested range loop")
                block.leftovers.append(stmt)
                return
            train = has_backward(stmt)
            block.steps.append(self.step_loop(stmt, block, train))
            return
        expr = expr_statement(stmt)
        mc = method_call(expr)
        if mc and mc[1] in ("train", "eval") and ctx.is_model(env.root(mc[0])):
            if mc[1] == "eval":
                block.calls_eval = True
            return
        if mc and mc[1] == "zero_grad" and env.root(mc[0]) in ctx.optimizer_names and ctx.manual is None:
            ctx.add(stmt, "MIG144", Severity.INFO,
                    "zero_grad() outside the batch loop removed: the Trainer zeroes gradients after every optimizer step")
            return
        if mc and mc[1] == "step" and env.root(mc[0]) in ctx.scheduler_names and ctx.manual is not None:
            # manual optimization: the Trainer steps no scheduler; the epoch-end hook does
            if not set(names_used(stmt)) & set(block.accs):
                block.epoch_end.append(stmt)
                ctx.add(stmt, "MIG122", Severity.INFO, "scheduler stepped in on_train_epoch_end (manual optimization)")
                return
        if mc and mc[1] == "step" and env.root(mc[0]) in ctx.scheduler_names:
            ctx.scheduler_interval = ctx.scheduler_interval or "epoch"
            if expr.args:
                ctx.scheduler_monitor = env.resolve(expr.args[0].value)
                ctx.scheduler_step = stmt
            return
        if printing.is_print(expr):
            block.prints.append(expr)
            ctx.add(
                stmt, "MIG108", Severity.INFO, "print replaced by self.log and the progress bar"
            )
            return
        node = small(stmt)
        if isinstance(node, cst.Return):
            if node.value is not None:
                block.returns = (
                    [el.value for el in node.value.elements]
                    if isinstance(node.value, cst.Tuple)
                    else [node.value]
                )
            return
        pairs = pairwise_assign(stmt)
        if pairs and all(_is_meter(v) for _, v in pairs):
            for name, _ in pairs:
                block.accs[f"{name}.avg"] = Accumulator(name, kind="meter")
            return
        if pairs and all(is_zero_literal(v) or m.matches(v, m.List(elements=[])) for _, v in pairs):
            for name, value in pairs:
                block.accs[name] = Accumulator(
                    name, kind="list" if isinstance(value, cst.List) else "sum"
                )
            return
        one = simple_assign(stmt)
        if one and call_name(one[1]) in _TQDM and one[1].args:
            block.bars[one[0]] = one[1]
            return
        if one and call_name(one[1]) == "len" and one[1].args:
            kind = _divisor_kind(one[1], block)
            if kind:
                block.sizes[one[0]] = kind
                return
        if (
            isinstance(node, cst.AugAssign)
            and isinstance(node.operator, cst.DivideAssign)
            and isinstance(node.target, cst.Name)
        ):
            if _finalise(block, node.target.value, node.value):
                return
        if (
            one
            and isinstance(one[1], cst.BinaryOperation)
            and isinstance(one[1].operator, cst.Divide)
            and dotted(one[1].left) == one[0]
            and _finalise(block, one[0], one[1].right)
        ):
            return
        if (
            one
            and isinstance(one[1], cst.BinaryOperation)
            and isinstance(one[1].operator, cst.Divide)
            and dotted(one[1].left) in block.accs
            and one[0] not in block.accs
            and _finalise(block, dotted(one[1].left), one[1].right)
        ):
            block.accs[one[0]] = block.accs[dotted(one[1].left)]  # `acc = correct / len(dataset)`
            return
        if one and one[0] in block.accs and _list_mean(one[1], block) == one[0]:
            block.accs[one[0]].final = "batches"
            return
        mean_of = _list_mean(one[1], block) if one and one[0] not in block.accs else None
        if mean_of is not None and block.accs[mean_of].kind == "list":
            block.accs[mean_of].final = "batches"
            block.accs[one[0]] = block.accs[mean_of]  # `train_loss = sum(losses) / len(losses)`
            return
        if one and self._local_definition(stmt, one[0], one[1], block):
            return
        if one and self._gathered_accuracy(stmt, one[0], one[1], block):
            return
        if is_housekeeping(stmt):
            block.epoch_end.append(stmt)
            ctx.add(stmt, "MIG110", Severity.INFO, "housekeeping call kept in the epoch-end hook")
            return
        if block.unrecognised is not None and block.unrecognised(stmt):
            return
        ctx.review(stmt, "statement outside the batch loop")
        block.leftovers.append(stmt)

    def _epoch_computation(self, stmt, block: Block) -> bool:
        """A once-per-epoch computation around the batch loops: assignments under
        `torch.no_grad()` (`samples = generator(torch.randn(...)); err = ...`), or an assignment
        reading what one computed. It becomes code in on_train_epoch_end, which runs at the same
        point of the epoch (after its training batches), so its random draws keep their order."""
        ctx = self.ctx
        if set(names_used(stmt)) & set(block.accs):
            return False  # reads an evaluation's results: `metric_statement` reads them back
        if no_grad_with(stmt):
            inner = list(stmt.body.body)
        elif set(names_used(stmt)) & set(block.computed):
            inner = [stmt]
        else:
            return False
        if not inner or not all(
            isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, (cst.Assign, cst.AnnAssign)) for x in s.body)
            for s in inner
        ):
            return False
        stored = names_stored(stmt)
        in_order = [
            name
            for line in inner
            for small_stmt in line.body
            for target in (
                [t.target for t in small_stmt.targets] if isinstance(small_stmt, cst.Assign) else [small_stmt.target]
            )
            for name in target_names(target)
        ]
        known = ctx.known | set(block.computed) | _BUILTINS
        if stored & ctx.known or not set(free_names(stmt)) <= known:
            return False  # updates the driver's state, or reads a batch loop's names
        entry = EpochStatement(stmt, "train")
        ctx.epoch_statements.append(entry)
        for name in stored:
            block.computed[name] = entry
        ctx.add(
            stmt,
            "MIG121",
            Severity.INFO,
            f"once-per-epoch computation of {', '.join(dict.fromkeys(in_order))} moved to on_train_epoch_end",
        )
        return True

    def _local_definition(self, stmt, name: str, value: cst.BaseExpression, block: Block) -> bool:
        """A helper that builds its own loss or optimizer: `criterion = nn.L1Loss()`, `opt = cls(model.parameters())`."""
        ctx = self.ctx
        if (
            isinstance(value, cst.Call)
            and value.args
            and m.matches(value.args[0].value, m.Call(func=m.Attribute(attr=m.Name("parameters"))))
        ):
            ctx.optimizer_names.add(name)
            if ctx.optimizer is None:
                ctx.optimizer = OptimizerPlan(
                    name=name, expr=value, subst=dict(block.env.subst), per_call=True
                )
                ctx.add(
                    stmt,
                    "MIG109",
                    Severity.INFO,
                    "optimizer re-created in every epoch's call: configure_optimizers creates it once "
                    "and on_train_epoch_start resets its state, as the original did",
                )
            return True
        cname = call_name(value) or ""
        if cname.startswith(("nn.", "torch.nn.")) or cname.endswith("Loss"):
            existing = ctx.attributes.get(name)
            if existing is None:
                ctx.attributes[name] = Attribute(name=name, expr=value, subst=dict(block.env.subst))
            ctx.add(
                stmt,
                "MIG104",
                Severity.INFO,
                f"{name} built once in the LightningModule's __init__",
            )
            return True
        return False

    def _gathered_accuracy(self, stmt, name: str, value: cst.BaseExpression, block: Block) -> bool:
        """`acc = (torch.cat(preds) == torch.cat(labels)).float().mean()`: one weighted-mean metric.

        The per-batch `preds.append(p)` / `labels.append(y)` items become one `self.log(name,
        (p == y).float().mean(), batch_size=...)`, whose epoch mean is the gathered fraction."""
        found = gathered_accuracy(value, block.accs)
        if found is None:
            return False
        left, right = found
        for step in block.steps:
            items = {id(i.accumulator): i for i in step.items if isinstance(i, LogItem)}
            if id(left) not in items or id(right) not in items:
                continue
            first, second = items[id(left)], items[id(right)]
            equal = cst.Comparison(
                left=first.value,
                comparisons=[cst.ComparisonTarget(operator=cst.Equal(), comparator=second.value)],
                lpar=[cst.LeftParen()],
                rpar=[cst.RightParen()],
            )
            as_float = cst.Call(func=cst.Attribute(value=equal, attr=cst.Name("float")))
            acc = Accumulator(name, final="dataset")
            block.accs[name] = acc
            merged = LogItem(
                value=cst.Call(func=cst.Attribute(value=as_float, attr=cst.Name("sum"))),
                accumulator=acc,
                batch_len=first.batch_len,
                unscaled=cst.Call(func=cst.Attribute(value=as_float, attr=cst.Name("mean"))),
            )
            step.items = [merged if i is first else i for i in step.items if i is not second]
            self.ctx.add(stmt, "MIG107", Severity.INFO, f"accuracy over gathered {left.name} and {right.name} logged as {name}")
            return True
        return False

    def _labels(self, block: Block) -> None:
        """Names for the accumulators from the prints that show them."""
        for expr in block.prints:
            for text, value in printing.pieces(expr):
                value = strip_item(value)
                name = dotted(value)
                target = None
                if name in block.accs:
                    target = block.accs[name]
                elif (ratio := accumulator_ratio(value, block)) is not None:
                    target, divisor, scale, floored = ratio
                    if target.final is None:
                        target.final = self._ratio_divisor(expr, target, divisor, block)
                        if target.final is not None and target.kind == "sum":
                            target.scale, target.floored = scale, floored
                    if target.floored and target.final is not None:
                        shown = printing.label(text) or target.name
                        self.ctx.add(
                            expr,
                            "MIG201",
                            Severity.WARNING,
                            f"{shown!r}: printed value was floored (//); logged value is the exact mean",
                        )
                if target is not None and target.label is None:
                    target.label = printing.label(text)
                if target is None and name in block.computed:
                    # a once-per-epoch value the print shows: logged in the hook that computes it
                    entry = block.computed[name]
                    if all(var != name for _, var in entry.logs):
                        entry.logs.append((printing.label(text) or name, name))

    def _ratio_divisor(self, expr, acc: Accumulator, divisor, block: Block) -> str | None:
        """What a printed ratio divides by: `_divisor_kind`, or a name bound outside the loop
        (`correct / n_val`), taken for the number of samples evaluated, with a warning."""
        kind = _divisor_kind(divisor, block)
        if kind is not None:
            return kind
        if (
            acc.kind == "sum"
            and isinstance(divisor, cst.Name)
            and divisor.value not in block.accs
            and not _looks_like_loader(divisor)
            and not any(word in divisor.value.lower() for word in ("batch", "step", "iter"))
        ):
            self.ctx.add(
                expr,
                "MIG202",
                Severity.WARNING,
                f"{acc.name} / {divisor.value} logged as a mean over the samples evaluated: "
                f"check that {divisor.value} is their number",
            )
            return "dataset"
        return None


_BUILTINS = set(dir(builtins))


def _is_constant(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Integer, cst.Float))


def accumulator_ratio(value: cst.BaseExpression, block: Block):
    """`acc / n`, `acc // n`, `K * acc / n`, `K * acc // n`, `acc * K / n`, `K * (acc / n)`:
    (accumulator, divisor, K or None, floored), for a constant K; None for anything else."""
    scale = None
    if (
        isinstance(value, cst.BinaryOperation)
        and isinstance(value.operator, cst.Multiply)
        and not value.lpar
    ):
        if _is_constant(value.left) and isinstance(value.right, cst.BinaryOperation):
            scale, value = value.left, value.right
        elif _is_constant(value.right) and isinstance(value.left, cst.BinaryOperation):
            scale, value = value.right, value.left
        else:
            return None
        if not isinstance(value.operator, cst.Divide):
            return None
    if not (
        isinstance(value, cst.BinaryOperation)
        and isinstance(value.operator, (cst.Divide, cst.FloorDivide))
    ):
        return None
    floored = isinstance(value.operator, cst.FloorDivide)
    left = value.left
    if (
        isinstance(left, cst.BinaryOperation)
        and isinstance(left.operator, cst.Multiply)
        and not left.lpar
        and scale is None
    ):
        if _is_constant(left.left):
            scale, left = left.left, left.right
        elif _is_constant(left.right):
            scale, left = left.right, left.left
    acc = block.accs.get(dotted(left) or "")
    if acc is None or acc.is_count:
        return None
    return acc, value.right, scale, floored


def _is_meter(expr: cst.BaseExpression) -> bool:
    """`AverageMeter()`, `AverageMeter("Loss", ":.4e")`: a running-average helper class."""
    return (call_name(expr) or "").split(".")[-1].endswith("Meter")


def _constant_test(test: cst.BaseExpression) -> bool | None:
    """`True`, `False`, `not True`...: a condition the caller's arguments decide."""
    if isinstance(test, cst.Name) and test.value in ("True", "False"):
        return test.value == "True"
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = _constant_test(test.expression)
        return None if inner is None else not inner
    return None


def _carried_state(stmts: list[cst.BaseStatement]) -> dict[int, tuple[str, cst.BaseExpression]]:
    """`hidden = model.init_hidden(bsz)` followed by a loop that reads `hidden` and binds it again:
    the statement's id -> (name, initial value)."""
    found = {}
    next_loop: tuple[set[str], set[str]] | None = None  # (read, bound) in the first loop after a statement
    for stmt in reversed(stmts):
        one = simple_assign(stmt)
        if (
            one is not None
            and next_loop is not None
            and isinstance(one[1], cst.Call)  # running totals start from literals; state from a call
            and call_name(one[1]) not in _TQDM
            and not _is_meter(one[1])
            and one[0] in next_loop[0]
            and one[0] in next_loop[1]
        ):
            found[id(stmt)] = one
        loops = [stmt] if isinstance(stmt, cst.For) else [] if isinstance(stmt, cst.SimpleStatementLine) else find(stmt, cst.For)
        if loops:
            next_loop = (set(names_used(loops[0].body)), names_stored(loops[0].body))
    return found


class _StoreRenamer(cst.CSTTransformer):
    """Assignment targets too: `output, hidden = model(data, hidden)` -> `output, self.hidden = ...`."""

    def __init__(self, renamed: dict[str, cst.BaseExpression]) -> None:
        self.renamed = renamed

    def leave_AssignTarget(self, original: cst.AssignTarget, updated: cst.AssignTarget) -> cst.AssignTarget:
        return updated.with_changes(target=self._target(updated.target))

    def _target(self, target):
        if isinstance(target, cst.Name) and target.value in self.renamed:
            return self.renamed[target.value]
        if isinstance(target, (cst.Tuple, cst.List)):
            return target.with_changes(
                elements=[el.with_changes(value=self._target(el.value)) for el in target.elements]
            )
        return target


def _rename_stored(stmt: cst.BaseStatement, renamed: dict[str, cst.BaseExpression]) -> cst.BaseStatement:
    return stmt.visit(_StoreRenamer(renamed))
