"""The whole-script analysis: finds the driver (module level, main() or the __main__ block), its
epoch loop and the roles of its names, and assembles the ScriptPlan."""

from __future__ import annotations

import ast
import builtins

import libcst as cst
import libcst.matchers as m

from migrate.analysis import device as dev
from migrate.analysis import optimization
from migrate.analysis import printing
from migrate.analysis import tensorboard as tb
from migrate.analysis import epoch as epoch_rules
from migrate.analysis import stopping
from migrate.analysis import trainer_class
from migrate.analysis.epoch import EpochStatement, metric_reads, updated_state
from migrate.analysis.loops import (
    SCHEDULERS,
    Block,
    Context,
    Env,
    Recogniser,
    _divisor_kind,
    bind_call,
    epoch_range,
    function_evaluates,
    function_training,
    has_backward,
    is_range_loop,
    _carried_state,
    accumulator_ratio,
    no_grad_with,
)
from migrate.analysis.nodes import (
    code,
    free_names,
    names_used,
    assign_parts,
    call_name,
    dotted,
    expr_statement,
    find,
    method_call,
    names_stored,
    simple_assign,
    small,
    strip_item,
    target_names,
)
from migrate.analysis.plan import (
    Accumulator,
    Attribute,
    Binding,
    LogItem,
    OptimizerPlan,
    SchedulerPlan,
    ScriptPlan,
    StepPlan,
    StoppingPlan,
)
from migrate.analysis.phases import next_phase
from migrate.analysis.positions import Positions
from migrate.analysis.step_budget import step_budget
from migrate.findings import Severity

_BUILTINS = set(dir(builtins))
LIGHTNING_MODULES = ("runtime", "lightning", "lightning.pytorch", "pytorch_lightning")


def is_lightning_form(module: cst.Module) -> bool:
    """Already converted: a top-level class subclasses LightningModule (any spelling)."""
    return any(
        isinstance(stmt, cst.ClassDef)
        and any((dotted(base.value) or "").endswith("LightningModule") for base in stmt.bases)
        for stmt in module.body
    )


def is_lightning_source(source: str) -> bool:
    """`is_lightning_form` on text, through Python's own parser: many times cheaper than libcst's,
    which matters because the engine re-converts every output to check idempotence."""
    if "LightningModule" not in source:
        return False
    return any(
        isinstance(stmt, ast.ClassDef)
        and any(ast.unparse(base).endswith("LightningModule") for base in stmt.bases)
        for stmt in ast.parse(source).body
    )


def _is_main_guard(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.If) and m.matches(
        stmt.test,
        m.Comparison(
            left=m.Name("__name__"), comparisons=[m.ComparisonTarget(comparator=m.SimpleString())]
        ),
    )


def _trains(loop: cst.For, functions: dict[str, cst.FunctionDef]) -> bool:
    if has_backward(loop):
        return True
    for call in find(loop.body, cst.Call, m.Call(func=m.Name())):
        fn = functions.get(call.func.value)
        if fn is not None and function_training(fn):
            return True
    return False


def driver_candidates(module: cst.Module) -> list[tuple[str, str | None, cst.CSTNode | None, list]]:
    """(kind, function name, the node holding the body (None for the module), body statements)
    for each place a driver can be: the module, each function, the `__main__` block."""
    candidates: list[tuple[str, str | None, cst.CSTNode | None, list]] = [("module", None, None, list(module.body))]
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            candidates.append(("function", stmt.name.value, stmt, list(stmt.body.body)))
        elif _is_main_guard(stmt):
            candidates.append(("main_guard", None, stmt, list(stmt.body.body)))
    return candidates


def find_driver(module: cst.Module, functions: dict[str, cst.FunctionDef]):
    """(kind, function name, body statements, epoch loop) for the first loop that trains each epoch."""
    for kind, name, _, body in driver_candidates(module):
        for stmt in body:
            if isinstance(stmt, cst.For) and is_range_loop(stmt) and _trains(stmt, functions):
                return kind, name, body, stmt
            if isinstance(stmt, cst.While) and _trains(stmt, functions):
                return kind, name, body, stmt
    return None


def _strip_device_calls(expr: cst.BaseExpression) -> cst.BaseExpression:
    while True:
        mc = method_call(expr)
        if mc and mc[1] in ("to", "cuda", "cpu"):
            expr = mc[0]
            continue
        return expr


def analyse(module: cst.Module, path: str = "<stdin>", source: str | None = None) -> ScriptPlan | None:
    """`source`, the text `module` was parsed from, lets findings get their lines cheaply."""
    positions = Positions(module, source)
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    found = find_driver(module, functions)
    reading = None
    if found is None:
        # A hand-written trainer class: read as the functional script it stands for.
        reading = trainer_class.read(module, driver_candidates(module), positions, path)
        if reading is None:
            return None
        module = reading.module
        functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
        found = reading.kind, reading.function, reading.body, reading.loop
    kind, fn_name, body, loop = found
    budget = None
    if isinstance(loop, cst.While):
        budget = step_budget(loop, body[: body.index(loop)], lambda s: _evaluates(s, functions))
        if budget is None:
            return None
    # The loop as epochs: the `for` itself, or the epoch form of a step-budget `while`.
    epochs_loop = budget.as_epochs if budget else loop
    ctx = Context(path=path, positions=positions, functions=functions)
    if reading is not None:
        ctx.findings.extend(reading.findings)
    if budget is not None:
        positions.alias(epochs_loop, loop)
        positions.alias(epochs_loop.body.body[0], loop)
        ctx.trainer_args.update(budget.trainer_args())
    rec = Recogniser(ctx)

    module_names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            module_names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine) and isinstance(
            stmt.body[0], (cst.Import, cst.ImportFrom)
        ):
            module_names |= names_stored(stmt)
    # Imports inside the driver function count as module-level names for the generated classes.
    if kind == "function":
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine) and isinstance(
                stmt.body[0], (cst.Import, cst.ImportFrom)
            ):
                module_names |= names_stored(stmt)

    bindings: dict[str, Binding] = {}
    sources = [(-1, s) for s in module.body] if kind != "module" else []
    sources += list(enumerate(body))
    accelerator_test = None
    device_seen = False
    for index, stmt in sources:
        if stmt is loop:
            break
        if isinstance(stmt, cst.If) and (found_if := dev.device_if(stmt)):
            ctx.device_names.add(found_if[0])
            accelerator_test, device_seen = found_if[1], True
            bindings[found_if[0]] = Binding(found_if[0], None, stmt, index)
            continue
        parts = assign_parts(stmt)
        if not parts:
            continue
        targets, value = parts
        for target in targets:
            if isinstance(target, cst.Name):
                bindings[target.value] = Binding(target.value, value, stmt, index)
                if dev.is_device_value(value):
                    ctx.device_names.add(target.value)
                    accelerator_test, device_seen = dev.device_test(value), True
            else:
                for name in target_names(target):
                    bindings[name] = Binding(name, None, stmt, index)

    args_name = None
    for name, binding in bindings.items():
        if m.matches(binding.value, m.Call(func=m.Attribute(attr=m.Name("parse_args")))):
            args_name = name

    # Optimizer and model: `opt = X(model.parameters(), ...)`.
    optimizer = None
    for name, binding in bindings.items():
        value = binding.value
        if (
            isinstance(value, cst.Call)
            and value.args
            and m.matches(value.args[0].value, m.Call(func=m.Attribute(attr=m.Name("parameters"))))
        ):
            optimizer = OptimizerPlan(name=name, expr=value, subst={}, model=dotted(value.args[0].value.func.value))
            ctx.optimizer_names.add(name)
            ctx.optimizers[name] = optimizer
            ctx.model_name = (optimizer.model or "").split(".")[0] or None  # `model.head.parameters()`: model
            ctx.optimizer = optimizer
    if len(ctx.optimizers) > 1:
        ctx.model_names = {opt.model for opt in ctx.optimizers.values() if opt.model}
    for name, binding in bindings.items():
        if optimization.is_grad_scaler(binding.value):
            ctx.scaler_names.add(name)
            enabled = optimization.scaler_enabled(binding.value)
            ctx.trainer_args["precision"] = optimization.Autocast("16-mixed", enabled).trainer_value()
            ctx.add(binding.statement, "MIG142", Severity.INFO,
                    "GradScaler removed: precision=\"16-mixed\" scales the loss in the Trainer")
    for name, binding in bindings.items():
        if tb.is_summary_writer(binding.value):
            ctx.writer_names.add(name)
            ctx.trainer_args["logger"] = tb.logger_for(binding.value)
            ctx.add(binding.statement, "MIG145", Severity.INFO,
                    "SummaryWriter replaced by Trainer(logger=TensorBoardLogger(...)) writing to the same directory")
    ctx.step_counters = _global_counters(epochs_loop, bindings)
    if ctx.writer_names:
        ctx.step_counters |= tb.step_counters(loop, ctx.writer_names)
    if ctx.writer_names and any(tb.logged(s, ctx.writer_names, set()) for s in find(loop.body, cst.SimpleStatementLine)):
        ctx.trainer_args.setdefault("log_every_n_steps", cst.Integer("1"))
    scheduler = None
    for name, binding in bindings.items():
        cname = call_name(binding.value) or ""
        if cname.split(".")[-1] in SCHEDULERS:
            scheduler = SchedulerPlan(name=name, expr=binding.value)
            ctx.scheduler_names.add(name)

    # Model: from the optimizer, else the first argument of the train function call.
    epoch_block = Block(env=Env(), stage="val", epoch=True)
    steps: list[StepPlan] = []
    ctx.known = set(bindings) | module_names
    if isinstance(epochs_loop.target, cst.Name):
        ctx.known.add(epochs_loop.target.value)

    after_loop = body[body.index(loop) + 1 :]
    epoch_var = epochs_loop.target.value if isinstance(epochs_loop.target, cst.Name) and budget is None else None
    level = _EpochLevel(ctx, epoch_block, steps, bindings, list(loop.body.body), after_loop,
                        module_names | ({epoch_var} if epoch_var else set()))
    epoch_block.unrecognised = level
    if ctx.model_name is None:
        ctx.model_name = _model_from_calls(loop, functions, bindings)

    epoch_block.carried_from.update(_carried_state(list(epochs_loop.body.body)))
    for stmt in epochs_loop.body.body:
        call, alias = _user_call(stmt, functions)
        if call is not None:
            steps_from_call, returned = _call_steps(rec, call, functions, ctx, epoch_block)
            if steps_from_call is not None:
                steps.extend(steps_from_call)
                for ret in returned:
                    if alias and ret is not None:
                        ret.alias = alias[0] if len(alias) == 1 else ret.alias
                        epoch_block.accs[ret.alias or ret.name] = ret
                if len(alias) > 1:
                    for ret, name in zip(returned, alias):
                        if ret is not None:
                            ret.alias = name
                            epoch_block.accs[name] = ret
                continue
        rec.statement(stmt, epoch_block)
    rec._labels(epoch_block)
    steps.extend(epoch_block.steps)
    ctx.epoch_statements.extend(EpochStatement(s, "train") for s in epoch_block.epoch_end)
    level.place_lr_changes()
    stopping_plan = level.stopping

    # After the loop: evaluations become trainer.test.
    after_tests: dict[int, StepPlan] = {}
    dropped: set[int] = set()
    reviewed: dict[int, str] = {}
    second: tuple[int, cst.For] | None = None
    loop_index = body.index(loop)
    for index in range(loop_index + 1, len(body)):
        stmt = body[index]
        if isinstance(stmt, cst.For) and is_range_loop(stmt) and _trains(stmt, functions) and second is None:
            second = (index, stmt)
            continue
        if isinstance(stmt, cst.For) and is_range_loop(stmt) and _trains(stmt, functions):
            _keep_for_review(ctx, reviewed, stmt, "a further training loop (another phase)")
            continue
        if tb.is_closing(stmt, ctx.writer_names):
            dropped.add(id(stmt))
            ctx.add(stmt, "MIG145", Severity.INFO, "SummaryWriter close/flush removed: the Trainer closes its loggers")
            continue
        if stopping_plan is not None and stopping_plan.reload is None and stopping.reload_statement(
            stmt, stopping_plan, ctx.model_name
        ):
            stopping_plan.reload = stmt
            continue
        if stopping_plan is not None and stopping.reads_path(stmt, stopping_plan):
            ctx.add(stmt, "MIG138", Severity.WARNING,
                    f"reads {code(stopping_plan.save_path)}, which the converted script no longer writes: "
                    "the best weights are in the checkpoint at trainer.checkpoint_callback.best_model_path")
        call, alias = _user_call(stmt, functions)
        test_steps = None
        if call is not None and function_evaluates(functions[call.func.value]):
            test_block = Block(env=Env(), stage="test")
            test_steps, returned = _call_steps(rec, call, functions, ctx, test_block, stage="test")
            for ret, name in zip(returned, alias):
                if ret is not None:
                    ret.alias = name
        elif no_grad_with(stmt) and any(isinstance(s, cst.For) for s in stmt.body.body):
            test_block = Block(env=Env(), stage="test")
            rec.block(stmt.body.body, test_block)
            test_steps = test_block.steps
        if test_steps:
            for step in test_steps:
                step.stage = "test"
            after_tests[index] = test_steps[0]
            ctx.add(
                stmt,
                "MIG103",
                Severity.INFO,
                f"converted test loop at {path}:{test_steps[0].span.line}-{test_steps[0].span.end_line} to test_step and trainer.test",
            )

    span = ctx.span(loop)
    if budget is not None:
        epochs, start, epoch_var = cst.parse_expression("-1"), None, None
        ctx.add(loop, "MIG148", Severity.INFO,
                f"step loop at {path}:{span.line}-{span.end_line} replaced by Trainer(max_steps=...).fit"
                + (", evaluation every N steps by val_check_interval" if budget.eval_every is not None else ""))
    else:
        rng = epoch_range(loop)
        epochs, start = rng if rng else (cst.Integer("1"), None)
        ctx.add(
            loop,
            "MIG106",
            Severity.INFO,
            f"epoch loop at {path}:{span.line}-{span.end_line} replaced by Trainer(max_epochs=...).fit",
        )

    phase = None
    if second is not None:
        index, second_loop = second
        between = body[loop_index + 1 : index]
        phase = next_phase(epochs_loop, epochs, between, second_loop, optimizer.name if optimizer else None)
        handled = any(id(body[i]) in dropped or i in after_tests for i in range(loop_index + 1, index))
        if phase is None or budget is not None or handled:
            phase = None
            _keep_for_review(ctx, reviewed, second_loop, "a second training loop (another phase)")
        else:
            epochs = phase.total_epochs
            dropped.update(id(s) for s in phase.statements)
            ctx.add(second_loop, "MIG160", Severity.INFO,
                    f"second training phase folded into the same fit: from epoch {code(phase.starts_at)}, "
                    "on_train_epoch_start runs its set-up" + (" and installs its optimizer" if phase.optimizer else ""))

    if scheduler is not None:
        intervals = {s for step in steps for s in step.step_schedulers}
        scheduler.interval = "step" if scheduler.name in intervals else "epoch"
        if ctx.scheduler_monitor is not None:
            scheduler.monitor = dotted(ctx.scheduler_monitor)
            scheduler.monitor_metric = level.logged_metrics().get(scheduler.monitor or "")
    if ctx.optimizer is not None and optimizer is None:
        optimizer = ctx.optimizer

    # Several optimizers stepped in the train loop: manual optimization over the networks they train.
    manual = next((s.manual for s in steps if s.stage == "train" and s.manual is not None), None)
    models: list[str] = []
    if manual is not None:
        stepped = [opt for opt in ctx.optimizers.values() if opt.name in manual.optimizers]
        models = list(dict.fromkeys(opt.model for opt in stepped))
        train_step = next(s for s in steps if s.manual is manual)
        ctx.model_name = _main_model(train_step, models)
        ctx.model_names = set(models)
        optimizer = ctx.optimizers[manual.optimizers[0]]
        ctx.findings.append(_finding(
            ctx,
            train_step,
            "MIG120",
            f"optimizers {', '.join(manual.optimizers)} stepped in one train loop: converted to manual "
            "optimization (automatic_optimization = False), in the same order",
        ))

    # Model class and the attributes (losses) the steps use.
    model_class = None
    model_binding = bindings.get(ctx.model_name or "")
    if model_binding is not None and model_binding.value is not None:
        cname = call_name(_strip_device_calls(model_binding.value))
        if cname in {s.name.value for s in module.body if isinstance(s, cst.ClassDef)}:
            model_class = cname

    # Attributes the steps call: driver names bound to nn.* constructions.
    for step in steps + list(after_tests.values()):
        for item in step.items:
            if not isinstance(item, cst.CSTNode):
                continue
        for name in _called_names(step):
            if name in ctx.attributes or ctx.is_model(name):
                continue
            binding = bindings.get(name)
            if binding is None or binding.value is None:
                continue
            cname = call_name(_strip_device_calls(binding.value)) or ""
            if cname.startswith(("nn.", "torch.nn.")) or cname.endswith("Loss"):
                ctx.attributes[name] = Attribute(name=name, expr=_strip_device_calls(binding.value))

    for step in steps:
        what = {"train": "train loop", "val": "validation loop", "test": "test loop"}[step.stage]
        finding_code = {"train": "MIG101", "val": "MIG102", "test": "MIG103"}[step.stage]
        hook = {"train": "training_step", "val": "validation_step", "test": "test_step"}[step.stage]
        ctx.findings.append(
            _finding(
                ctx,
                step,
                finding_code,
                f"converted {what} at {path}:{step.span.line}-{step.span.end_line} to {hook}",
            )
        )
    if device_seen:
        ctx.findings.append(
            _first_finding(
                ctx,
                bindings,
                "MIG105",
                "device handling removed: the Trainer places the model and batches",
            )
        )

    if source is None or any(name in source for name in _LEGACY):
        _legacy_wrappers(ctx, [*body, *(functions[name] for name in ctx.used_functions)])
    plan = ScriptPlan(
        path=path,
        driver_kind=kind,
        driver_function=fn_name,
        driver_body=body,
        epoch_loop=loop,
        epoch_var=epoch_var,
        epochs=epochs,
        epoch_start=start,
        model_name=ctx.model_name or "model",
        model_class=model_class,
        bindings=bindings,
        module_names=module_names,
        args_name=args_name,
        steps=steps,
        after_loop_tests=after_tests,
        optimizer=optimizer,
        scheduler=scheduler,
        attributes=ctx.attributes,
        accelerator=dev.accelerator_for(accelerator_test) if device_seen else None,
        epoch_reviews=epoch_block.leftovers,
        epoch_statements=ctx.epoch_statements,
        epoch_metrics=dict(epoch_block.accs),
        removed_functions=ctx.used_functions,
        findings=ctx.findings,
        manual=manual,
        optimizers=list(ctx.optimizers.values()),
        models=models,
        trainer_args=ctx.trainer_args,
        replaced_names=ctx.scaler_names | ctx.writer_names | ctx.step_counters | ({budget.iterator} if budget else set()),
        dropped_statements=dropped,
        reviewed_statements=reviewed,
        next_phase=phase,
        stopping=stopping_plan,
        lr_monitor=level.lr_monitor,
        module=module if reading is not None else None,
    )
    name_metrics(plan)
    _plan_findings(ctx, plan)
    return plan


def name_metrics(plan: ScriptPlan) -> None:
    """Evaluation metrics that share a name with a training metric get the stage as a prefix."""
    train_names = set()
    for step in plan.steps:
        if step.stage == "train":
            train_names |= {i.final_name() for i in step.items if isinstance(i, LogItem)}
    for step in [*plan.steps, *plan.after_loop_tests.values()]:
        if step.stage == "train":
            continue
        for item in step.items:
            if isinstance(item, LogItem) and item.final_name() in train_names:
                item.name = f"{step.stage}_{item.final_name()}"


def logged_name(plan: ScriptPlan, acc) -> str:
    """The name an accumulator is logged under (once `name_metrics` ran)."""
    for step in [*plan.steps, *plan.after_loop_tests.values()]:
        for item in step.items:
            if isinstance(item, LogItem) and item.accumulator is acc:
                return item.final_name()
    return acc.alias or acc.name


def _plan_findings(ctx: Context, plan: ScriptPlan) -> None:
    """Findings that name a logged metric: they need the final metric names."""
    sched = plan.scheduler
    if sched is not None and sched.monitor_metric is not None and ctx.scheduler_step is not None:
        ctx.add(ctx.scheduler_step, "MIG130", Severity.INFO,
                f"{sched.name}.step({sched.monitor}) replaced by configure_optimizers' lr_scheduler config "
                f"with monitor={logged_name(plan, sched.monitor_metric)!r}: the Trainer steps it at each epoch's end")
    stop = plan.stopping
    if stop is None:
        return
    monitor = logged_name(plan, stop.metric)
    first = stop.statements[0]
    if stop.patience is not None:
        delta = f", min_delta={code(stop.min_delta)}" if stop.min_delta is not None else ""
        ctx.add(first, "MIG133", Severity.INFO,
                f"patience counter {stop.counter} on {stop.metric.alias or stop.metric.name} replaced by "
                f"EarlyStopping(monitor={monitor!r}, mode={stop.mode!r}, patience={code(stop.patience)}{delta}); "
                f"{stop.best} after training is its best_score")
    if stop.save_path is not None:
        where = (f"{stop.checkpoint_dir}/{stop.checkpoint_name}.ckpt" if stop.checkpoint_name
                 else "the logger's checkpoints directory")
        ctx.add(first, "MIG134", Severity.INFO,
                f"torch.save of the best weights to {code(stop.save_path)} replaced by ModelCheckpoint(monitor="
                f"{monitor!r}, mode={stop.mode!r}, save_top_k=1), which writes a Lightning checkpoint to {where} "
                "(trainer.checkpoint_callback.best_model_path)")
        if stop.min_delta is not None:
            ctx.add(first, "MIG135", Severity.WARNING,
                    f"ModelCheckpoint counts any improvement of {monitor!r} as the new best; the original saved "
                    f"only improvements by more than {code(stop.min_delta)}, so the best checkpoint can be a later "
                    "epoch's")
    if stop.reload is not None:
        ctx.add(stop.reload, "MIG136", Severity.INFO,
                f"reloading {code(stop.save_path)} after training replaced by load_from_checkpoint("
                "trainer.checkpoint_callback.best_model_path), which loads the best weights into the model")


class _EpochLevel:
    """Statements in the epoch loop's body that no batch-loop recogniser took (`Block.unrecognised`):
    early stopping and best-weights saving, learning-rate reads and changes, and statements that
    read evaluation results (kept in an epoch-end hook)."""

    def __init__(self, ctx: Context, block: Block, steps: list[StepPlan], bindings: dict[str, Binding],
                 loop_body: list, after_loop: list, known: set[str]) -> None:
        self.ctx, self.block, self.steps, self.bindings = ctx, block, steps, bindings
        self.loop_body, self.after_loop, self.known = loop_body, after_loop, known
        self.stopping: StoppingPlan | None = None
        self.consumed: set[int] = set()
        self.lr_changes: list[tuple[EpochStatement, bool]] = []
        self.lr_monitor = False

    def __call__(self, stmt: cst.BaseStatement) -> bool:
        if id(stmt) in self.consumed:
            return True
        return self._stopping(stmt) or self._lr_print(stmt) or self._lr_change(stmt) or self._metric(stmt)

    def _all_steps(self) -> list[StepPlan]:
        return self.steps + self.block.steps

    def logged_metrics(self) -> dict[str, Accumulator]:
        logged = {id(item.accumulator) for step in self._all_steps() for item in step.items
                  if isinstance(item, LogItem) and item.accumulator is not None}
        return {name: acc for name, acc in self.block.accs.items() if id(acc) in logged}

    def _others(self, *skip: cst.CSTNode) -> list:
        return [s for s in self.loop_body if all(s is not t for t in skip)]

    def _stopping(self, stmt) -> bool:
        if self.stopping is not None or not isinstance(stmt, cst.If):
            return False
        index = next((i for i, s in enumerate(self.loop_body) if s is stmt), None)
        if index is None:
            return False
        following = self.loop_body[index + 1] if index + 1 < len(self.loop_body) else None
        found = stopping.recognise(stmt, following, self.logged_metrics(), self.bindings, self.ctx.model_name)
        if found is None:
            return False
        plan, took_following = found
        tracked = {plan.best, plan.counter} - {None}
        if tracked & set(names_used(self._others(*plan.statements))):
            return False  # something else in the epoch reads the best value or the counter
        self.stopping = plan
        if took_following:
            self.consumed.add(id(following))
        return True

    def _lr_print(self, stmt) -> bool:
        """`current_lr = optimizer.param_groups[0]["lr"]` read only to print it."""
        ctx = self.ctx
        one = simple_assign(stmt)
        if not one or not epoch_rules.lr_read(one[1], ctx.optimizer_names, ctx.scheduler_names):
            return False
        name = one[0]
        for other in self._others(stmt):
            if name in names_used(other) and not printing.is_print(expr_statement(other)):
                return False
        if name in names_used(self.after_loop):
            return False
        self.lr_monitor = True
        ctx.add(stmt, "MIG131", Severity.INFO,
                f"{name}, the learning rate read to be printed, dropped: "
                "LearningRateMonitor(logging_interval=\"epoch\") logs it to the logger at each epoch's start")
        return True

    def _lr_change(self, stmt) -> bool:
        """`if (epoch + 1) % k == 0: for g in optimizer.param_groups: g["lr"] *= 0.5`."""
        ctx = self.ctx
        if not epoch_rules.changes_lr(stmt, ctx.optimizer_names) or metric_reads(stmt, self.block.accs):
            return False
        if any(name not in self.known and name not in self.bindings and name not in _BUILTINS
               for name in free_names([stmt])):
            return False
        after_val = any(step.stage == "val" for step in self._all_steps())
        item = EpochStatement(stmt, "train", per_epoch=True)
        ctx.epoch_statements.append(item)
        self.lr_changes.append((item, after_val))
        return True

    def place_lr_changes(self) -> None:
        """An lr change made after validation goes to on_validation_epoch_end when statements after
        it run there, so that the order of the epoch-end work stays the original's."""
        statements = self.ctx.epoch_statements
        for item, after_val in self.lr_changes:
            position = next(i for i, e in enumerate(statements) if e is item)
            if after_val and any(e.stage == "val" for e in statements[position + 1 :]):
                item.stage = "val"
            hook = "on_validation_epoch_end" if item.stage == "val" else "on_train_epoch_end"
            self.ctx.add(item.statement, "MIG132", Severity.INFO,
                         f"learning-rate change kept in {hook}, applied to self.optimizers().param_groups "
                         "once per epoch as in the original")

    def _metric(self, stmt) -> bool:
        reads = metric_reads(stmt, self.block.accs)
        if not reads:
            return False
        item = _metric_statement(self.ctx, stmt, reads, self._all_steps(), self.bindings)
        if epoch_rules.loop_breaks(stmt):
            item.per_epoch = True
            self.ctx.add(stmt, "MIG137", Severity.INFO,
                         f"`break` out of the epoch loop replaced by self.trainer.should_stop = True in the "
                         f"{item.stage} epoch-end hook: training stops once this epoch ends")
        self.ctx.epoch_statements.append(item)
        return True


def _keep_for_review(ctx: Context, reviewed: dict[int, str], loop: cst.For, what: str) -> None:
    """A training loop after the fitted one stays plain PyTorch, after the fit, marked."""
    reason = f"{what} runs as plain PyTorch after Trainer.fit"
    ctx.review(loop, reason)
    reviewed[id(loop)] = f"# migrate: review ({reason}; make it a second Trainer.fit)"


def _evaluates(stmt: cst.CSTNode, functions: dict[str, cst.FunctionDef]) -> bool:
    """Runs an evaluation: calls a helper that loops without backward, or is a no_grad loop."""
    call, _ = _user_call(stmt, functions)
    if call is not None and function_evaluates(functions[call.func.value]):
        return True
    return no_grad_with(stmt) and any(isinstance(s, cst.For) for s in stmt.body.body)


def _global_counters(loop: cst.For, bindings: dict[str, Binding]) -> set[str]:
    """`step = 0` before the epoch loop and `step += 1` in its batch loop: the Trainer's global_step."""
    counters = set()
    for inner in find(loop.body, cst.For):
        for stmt in inner.body.body:
            node = small(stmt)
            if (
                isinstance(node, cst.AugAssign)
                and isinstance(node.operator, cst.AddAssign)
                and m.matches(node.value, m.Integer("1"))
                and isinstance(node.target, cst.Name)
                and (binding := bindings.get(node.target.value)) is not None
                and m.matches(binding.value, m.Integer("0"))
            ):
                counters.add(node.target.value)
    return counters


_LEGACY = {
    "Variable": "Variable(...) removed: tensors carry autograd themselves since PyTorch 0.4",
    "DataParallel": "DataParallel removed: the Trainer places the model; Trainer(devices=N, strategy=\"ddp\") "
    "runs it on several GPUs",
}


def _legacy_wrappers(ctx: Context, stmts: list[cst.CSTNode]) -> None:
    """Reports the wrappers the rewrite unwraps, once per statement."""
    for line in find(stmts, cst.SimpleStatementLine):
        wrapped = {(dotted(call.func) or "").split(".")[-1] for call in find(line, cst.Call)} & set(_LEGACY)
        for name in sorted(wrapped):
            ctx.add(line, "MIG147", Severity.INFO, _LEGACY[name])


def _metric_statement(ctx: Context, stmt, reads, steps: list[StepPlan], bindings) -> EpochStatement:
    """An epoch-level statement reading evaluation results: it runs at the end of the epoch of
    the stage that logged them (validation when any came from validation)."""
    logged_in = {
        id(item.accumulator): step.stage for step in steps for item in step.items if isinstance(item, LogItem)
    }
    stage = "val" if any(logged_in.get(id(acc)) == "val" for acc in reads.values()) else "train"
    state = updated_state(stmt, {name for name, b in bindings.items() if b.index >= 0})
    ctx.add(stmt, "MIG111", Severity.INFO, f"epoch-level statement moved to the {stage} epoch-end hook, reading "
            + ", ".join(reads) + " from trainer.callback_metrics")
    return EpochStatement(stmt, stage, metrics=reads, state=state)


def _finding(ctx: Context, step: StepPlan, code: str, message: str):
    from migrate.findings import Finding

    return Finding(ctx.path, step.span.line, step.span.col, code, Severity.INFO, message)


def _first_finding(ctx: Context, bindings, code: str, message: str):
    from migrate.findings import Finding

    for name in ctx.device_names:
        binding = bindings.get(name)
        if binding is not None:
            span = ctx.span(binding.statement)
            return Finding(ctx.path, span.line, span.col, code, Severity.INFO, message)
    return Finding(ctx.path, 1, 1, code, Severity.INFO, message)


def _user_call(stmt, functions) -> tuple[cst.Call | None, list[str]]:
    expr = expr_statement(stmt)
    alias: list[str] = []
    if expr is None:
        parts = assign_parts(stmt)
        if parts and len(parts[0]) == 1:
            expr = parts[1]
            alias = target_names(parts[0][0])
    if (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value in functions
    ):
        fn = functions[expr.func.value]
        if find(fn, cst.For):
            return expr, alias
    return None, []


def _call_steps(
    rec: Recogniser, call: cst.Call, functions, ctx: Context, outer: Block, stage: str | None = None
):
    fn = functions[call.func.value]
    subst = bind_call(fn, call)
    if subst is None:
        return None, []
    # Parameters bound to the caller's names resolve through the caller's own substitutions.
    subst = {k: outer.env.resolve(v) for k, v in subst.items()}
    train = function_training(fn)
    block = Block(env=Env(subst=subst), stage="train" if train else (stage or "val"))
    rec.block(list(fn.body.body), block)
    if train and block.steps and not any(step.loss_name for step in block.steps):
        train = False  # `if train: loss.backward()` in a helper this call runs with train=False
    for step in block.steps:
        step.origin = f"{fn.name.value}()"
        step.function = fn.name.value
        if step.stage == "train" and not train:
            step.stage = stage or "val"
        for leftover in block.leftovers:
            step.reviews.append((leftover, "statement outside the batch loop"))
    stage_of_block = block.steps[0].stage if block.steps else block.stage
    ctx.epoch_statements.extend(EpochStatement(s, stage_of_block, dict(subst)) for s in block.epoch_end)
    ctx.used_functions.add(fn.name.value)
    returned = []
    for value in block.returns:
        ratio = accumulator_ratio(value, block)  # `total / n`, `100. * correct / len(loader.dataset)`
        if ratio is not None:
            acc, divisor, scale, floored = ratio
            if acc.final is None:
                acc.final = _divisor_kind(divisor, block)
                if acc.final is not None and acc.kind == "sum":
                    acc.scale, acc.floored = scale, floored
            if acc.final is None and acc.weighted:
                acc.final = "dataset"
                ctx.add(fn, "MIG202", Severity.WARNING,
                        f"{acc.name} / {code(divisor)} logged as the mean weighted by the batch sizes "
                        f"it was summed with: check that {code(divisor)} is their total")
            returned.append(acc)
            continue
        returned.append(block.accs.get(dotted(value) or ""))
    return block.steps, returned


def _model_from_calls(loop: cst.For, functions, bindings) -> str | None:
    for call in find(loop.body, cst.Call, m.Call(func=m.Name())):
        fn = functions.get(call.func.value)
        if fn is None or not function_training(fn):
            continue
        subst = bind_call(fn, call) or {}
        for target in find(fn, cst.Call, m.Call(func=m.Attribute(attr=m.Name("parameters")))):
            base = target.func.value
            if isinstance(base, cst.Name) and base.value in subst:
                return dotted(subst[base.value])
    return None


def _main_model(step: StepPlan, models: list[str]) -> str:
    """The network `forward` runs: a GAN's generator, whose output the step detaches
    (`fake = generator(z)` ... `fake.detach()`); else the first one built."""
    nodes = [item for item in step.items if isinstance(item, cst.CSTNode)]
    outputs: dict[str, str] = {}
    for assign in find(nodes, cst.Assign):
        call = assign.value
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
            continue
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Name):
            resolved = step.subst.get(call.func.value)
            name = dotted(resolved) if resolved is not None else call.func.value
            if name in models:
                outputs[assign.targets[0].target.value] = name
    for call in find(nodes, cst.Call, m.Call(func=m.Attribute(attr=m.Name("detach")))):
        base = call.func.value
        if isinstance(base, cst.Name) and base.value in outputs:
            return outputs[base.value]
    return models[0]


def _called_names(step: StepPlan) -> list[str]:
    names = []
    for item in step.items:
        node = item if isinstance(item, cst.CSTNode) else item.value
        for call in find(node, cst.Call, m.Call(func=m.Name())):
            name = call.func.value
            resolved = step.subst.get(name)
            names.append(dotted(resolved) if resolved is not None else name)
    return [n for n in names if n]
