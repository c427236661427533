"""The LightningModule: __init__, forward, the steps built from the user's loop bodies,
epoch-end hooks for statements kept for review, and configure_optimizers."""

from __future__ import annotations

import textwrap

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import code, dotted, free_names, names_stored, names_used
from migrate.analysis.plan import Accumulator, EpochStatement, LogItem, ScriptPlan, StepPlan
from migrate.rewrite.device import clean_statements
from migrate.rewrite.names import _BUILTINS, ModuleNames
from migrate.substitution import substitute

REVIEW = "# migrate: review"
_HOOK = {"train": "training_step", "val": "validation_step", "test": "test_step"}
_EPOCH_START = {"train": "on_train_epoch_start", "val": "on_validation_epoch_start", "test": "on_test_epoch_start"}
_EPOCH_END = {"train": "on_train_epoch_end", "val": "on_validation_epoch_end", "test": "on_test_epoch_end"}


def indent(text: str, level: int) -> str:
    return textwrap.indent(text, "    " * level, lambda line: True)


def _atomic(expr: cst.BaseExpression) -> str:
    text = code(expr)
    if isinstance(expr, (cst.BinaryOperation, cst.BooleanOperation, cst.IfExp, cst.Comparison, cst.UnaryOperation)):
        return f"({text})"
    return text


def _is_batch_count(expr: cst.BaseExpression, batch_len: cst.BaseExpression) -> bool:
    if code(expr) == code(batch_len):
        return True
    if m.matches(expr, m.Call(func=m.Name("len"))):
        return True
    return m.matches(expr, m.Call(func=m.Attribute(attr=m.Name("size")), args=[m.Arg(m.Integer("0"))])) or \
        m.matches(expr, m.Subscript(value=m.Attribute(attr=m.Name("shape"))))


class _ManualBackward(cst.CSTTransformer):
    """`loss.backward(...)` -> `self.manual_backward(loss, ...)`: the backward of manual optimization."""

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if (
            isinstance(updated.func, cst.Attribute)
            and updated.func.attr.value == "backward"
            and not (dotted(updated.func.value) or "").startswith("torch")
        ):
            loss = cst.Arg(updated.func.value)
            args = [loss.with_changes(comma=cst.MaybeSentinel.DEFAULT), *updated.args] if updated.args else [loss]
            return updated.with_changes(func=cst.parse_expression("self.manual_backward"), args=args)
        return updated


def log_call(item: LogItem, stage: str) -> str:
    """The self.log(...) for one metric, keeping its value (weighted means where the original divided)."""
    name = item.final_name()
    acc = item.accumulator
    value = item.value
    extra = []
    if acc is None:
        extra.append("prog_bar=True")
        return f"self.log({name!r}, {code(value)}{''.join(', ' + e for e in extra)})"
    if acc.final == "dataset":
        batch_len = item.batch_len
        if item.unscaled is not None:
            text = code(item.unscaled)
            if acc.scale is not None:
                text = f"{_atomic(acc.scale)} * {_atomic(item.unscaled)}"
        else:
            scale = f"{_atomic(acc.scale)} * " if acc.scale is not None else ""
            text = f"{scale}{_atomic(value)} / {code(batch_len)}"
        extra.append(f"batch_size={code(batch_len)}")
    elif acc.final == "batches" or acc.kind == "list":
        text = code(value)
        extra.append("batch_size=1")
    else:
        text = code(value)
        extra.append('reduce_fx="sum"')
    if stage == "train":
        extra = ["on_step=False", "on_epoch=True", *extra]
    if item.prog_bar or acc.prog_bar:
        extra.append("prog_bar=True")
    return f"self.log({name!r}, {text}, {', '.join(extra)})"


class ModuleBuilder:
    def __init__(self, plan: ScriptPlan, prefix: str, device_names: set[str]) -> None:
        self.plan = plan
        self.prefix = prefix
        self.device_names = device_names
        self.manual = plan.manual
        if self.manual is not None:
            # several networks, each an attribute under its own name
            fixed = {name: cst.parse_expression(f"self.{name}") for name in plan.models}
            for index, name in enumerate(self.manual.optimizers):
                fixed[name] = cst.parse_expression(f"self.optimizers()[{index}]")
        else:
            fixed = {plan.model_name: cst.parse_expression("self.model")}
        for name in plan.attributes:
            fixed[name] = cst.parse_expression(f"self.{name}")
        if plan.epoch_var:
            start = plan.epoch_start
            fixed[plan.epoch_var] = cst.parse_expression(
                "self.current_epoch" if start is None else f"(self.current_epoch + {code(start)})")
        for name in device_names:
            fixed[name] = cst.parse_expression("self.device")
        for name in state_names(plan):
            fixed[name] = cst.parse_expression(f"self.{name}")
        if plan.optimizer is not None and self.manual is None:
            fixed[plan.optimizer.name] = cst.parse_expression("self.optimizers()")
        if plan.scheduler is not None:
            fixed[plan.scheduler.name] = cst.parse_expression("self.lr_schedulers()")
        self.names = ModuleNames(plan, hparams=True, fixed=fixed)
        self.reviews: list[str] = []

    # --- moved code -------------------------------------------------------------------------------
    def _move(self, stmts: list[cst.BaseStatement], subst: dict, local: set[str]) -> list[cst.BaseStatement]:
        local_subst = {k: v for k, v in subst.items() if k not in local}
        moved = clean_statements([substitute(s, local_subst) for s in stmts], self.device_names, self.plan.model_name)
        mapping = self.names.mapping(free_names(moved), local)
        return [substitute(s, mapping, self.names.attribute) for s in moved]

    def move_expr(self, expr: cst.BaseExpression, subst: dict, extra: dict | None = None) -> cst.BaseExpression:
        expr = substitute(expr, subst)
        extra = extra or {}
        mapping = self.names.mapping([n for n in names_used(expr) if n not in extra], set())
        mapping.update(extra)
        return substitute(expr, mapping, self.names.attribute)

    def step(self, step: StepPlan, names_taken: set[str]) -> str:
        body_nodes = [i for i in step.items if isinstance(i, cst.CSTNode)]
        local = names_stored(body_nodes) | set(_target_names(step.target))
        manual = step.manual if step.stage == "train" else None
        handles = [manual.handles[name] for name in manual.optimizers] if manual is not None else []
        local |= set(handles)
        used = set(names_used(body_nodes)) | local
        if isinstance(step.target, cst.Name):
            batch_param, unpack = step.target.value, None
        else:
            batch_param = "batch" if "batch" not in used and step.index_name != "batch" else "batch_data"
            unpack = f"{code(step.target.with_changes(lpar=[], rpar=[]))} = {batch_param}"
        if step.index_name and step.index_start is None:
            index_param, index_line = step.index_name, None
        else:
            index_param = "batch_idx" if "batch_idx" not in used else "batch_index"
            index_line = f"{step.index_name} = {index_param} + {code(step.index_start)}" if step.index_name else None
        lines: list[str] = []
        if handles:
            lines.append(f"{', '.join(handles)} = self.optimizers()\n")
        if unpack:
            lines.append(unpack + "\n")
        if index_line:
            lines.append(index_line + "\n")
        # Log items live among the statements; move statements in runs to keep their order.
        run: list[cst.BaseStatement] = []
        reviewed = {id(node) for node, _ in step.reviews}

        def flush() -> None:
            for stmt in self._move(run, step.subst, local):
                if manual is not None:
                    stmt = stmt.visit(_ManualBackward())
                text = code(stmt)
                lines.append(text)
            run.clear()

        for item in step.items:
            if isinstance(item, LogItem):
                flush()
                if item.accumulator is not None and item.accumulator.is_count:
                    continue
                value = self.move_expr(item.value, {k: v for k, v in step.subst.items() if k not in local})
                unscaled = item.unscaled
                if unscaled is not None:
                    unscaled = self.move_expr(unscaled, {k: v for k, v in step.subst.items() if k not in local})
                item_copy = LogItem(value=value, name=item.name, accumulator=item.accumulator, label_hint=item.label_hint,
                                    prog_bar=item.prog_bar, batch_len=item.batch_len, unscaled=unscaled)
                lines.append(log_call(item_copy, step.stage) + "\n")
            else:
                if id(item) in reviewed:
                    flush()
                    lines.append(REVIEW + "\n")
                run.append(item)
        flush()
        if step.stage == "train" and manual is None:
            lines.append(f"return {step.loss_name}\n")
        head = f"def {_HOOK[step.stage]}(self, {batch_param}, {index_param}):\n"
        return head + indent("".join(lines) or "pass\n", 1)

    def reviewed(self, stmts: list[cst.BaseStatement], subst: dict) -> str:
        """Statements kept for review, each under a marker (commented out when it reads loop names)."""
        parts = []
        plan = self.plan
        for original in stmts:
            stmt = substitute(original, subst)
            unresolved = [n for n in free_names([stmt]) if n not in plan.module_names and n not in _BUILTINS
                          and n not in plan.bindings and n not in self.names.fixed and n != plan.args_name]
            if unresolved:
                commented = "".join(f"# {line}\n" for line in code(stmt).strip("\n").splitlines())
                parts.append(f"{REVIEW} (reads {', '.join(unresolved)})\n{commented}")
            else:
                moved = self._move([original], subst, set())
                parts.append(f"{REVIEW}\n{code(moved[0] if moved else original)}")
        return "".join(parts)

    def epoch_statements(self, statements: list[EpochStatement]) -> str:
        """Once-per-epoch code; evaluation results it reads come back from `callback_metrics`."""
        reads: dict[str, str] = {}
        body = []
        for item in statements:
            for name, acc in item.metrics.items():
                reads.setdefault(name, f"{name} = self.trainer.callback_metrics[{metric_name(self.plan, acc)!r}].item()\n")
            on_module = {name: self.names.fixed[name] for name in item.state if name in self.names.fixed}
            statement = substitute(item.statement, on_module)
            for stmt in self._move([statement], item.subst, set(item.metrics)):
                if item.per_epoch:
                    stmt = stmt.visit(_StopInsteadOfBreak())
                comments = [line for line in stmt.leading_lines if line.comment is not None]
                body.append(code(stmt.with_changes(leading_lines=comments)))
            for name, value in item.logs:
                body.append(f"self.log({name!r}, {value})\n")
        once = reads or any(item.per_epoch for item in statements)
        guard = "if self.trainer.sanity_checking:\n    return\n" if once and statements[0].stage == "val" else ""
        return guard + "".join(reads.values()) + "".join(body)

    def epoch_end(self, stage: str, body: str) -> str:
        """The hook; `pass` closes a body that holds only commented-out review code."""
        if all(not line.strip() or line.lstrip().startswith("#") for line in body.splitlines()):
            body += "pass\n"
        return f"def {_EPOCH_END[stage]}(self):\n" + indent(body, 1)

    def next_phase(self, phase) -> str:
        """The second phase's set-up, when its first epoch starts; its optimizer replaces the first's."""
        lines = [
            code(stmt.with_changes(leading_lines=[line for line in stmt.leading_lines if line.comment is not None]))
            for stmt in self._move(phase.setup, {}, set())
        ]
        if phase.optimizer is not None:
            lines.append(f"self.trainer.optimizers = [{code(self.move_expr(phase.optimizer, {}))}]\n")
        return f"if self.current_epoch == {code(phase.starts_at)}:\n" + indent("".join(lines) or "pass\n", 1)

    def configure_optimizers(self) -> str:
        plan = self.plan
        if self.manual is not None:
            return self._manual_optimizers()
        opt = plan.optimizer
        expr = opt.expr
        owner = expr.args[0].value.func.value
        if isinstance(owner, cst.Name) and owner.value in opt.subst:
            owner = opt.subst[owner.value]
        if dotted(owner) == plan.model_name:  # a subset (`model.head.parameters()`) stays as written
            first = expr.args[0].with_changes(value=cst.parse_expression("self.parameters()"))
            expr = expr.with_changes(args=[first, *expr.args[1:]])
        expr = self.move_expr(expr, opt.subst)
        lines = [f"optimizer = {code(expr)}\n"]
        sched = plan.scheduler
        if sched is None:
            lines.append("return optimizer\n")
        else:
            sexpr = self.move_expr(sched.expr, {}, {opt.name: cst.Name("optimizer")})
            lines.append(f"scheduler = {code(sexpr)}\n")
            config = f'"scheduler": scheduler, "interval": "{sched.interval}"'
            monitor = sched.monitor
            if sched.monitor_metric is not None and metric_logged(plan, sched.monitor_metric):
                monitor = metric_name(plan, sched.monitor_metric)
            if monitor:
                config += f', "monitor": {monitor!r}'
            lines.append(f'return {{"optimizer": optimizer, "lr_scheduler": {{{config}}}}}\n')
        return "def configure_optimizers(self):\n" + indent("".join(lines), 1)

    def _manual_optimizers(self) -> str:
        """Each optimizer built as the script built it, returned in the order the loop steps them."""
        plan, manual = self.plan, self.manual
        local = {name: cst.Name(name) for name in manual.optimizers}
        lines = [
            f"{opt.name} = {code(self.move_expr(opt.expr, opt.subst, local))}\n"
            for opt in plan.optimizers
            if opt.name in manual.optimizers
        ]
        returned = f"[{', '.join(manual.optimizers)}]"
        sched = plan.scheduler
        if sched is None:
            lines.append(f"return {returned}\n")
        else:
            sexpr = self.move_expr(sched.expr, {}, local)
            lines.append(f"scheduler = {code(sexpr)}\n")
            lines.append(f"return {returned}, [scheduler]\n")
        return "def configure_optimizers(self):\n" + indent("".join(lines), 1)

    def models(self) -> list[str]:
        """The networks the module is given: `model`, or under their own names (manual optimization)."""
        return list(self.plan.models) if self.manual is not None else ["model"]

    def init(self, attributes_code: list[str]) -> str:
        params = self.names.params
        objects = list(params.objects)
        models = self.models()
        signature = ", ".join(["self", *models, *objects, *params.plain])
        lines = ["super().__init__()\n"]
        ignore = [*models, *objects]
        lines.append(f"self.save_hyperparameters(ignore={ignore!r})\n")
        if self.manual is not None:
            lines.append("self.automatic_optimization = False\n")
        for name in models:
            lines.append(f"self.{name} = {name}\n")
        for name in objects:
            lines.append(f"self.{name} = {name}\n")
        lines.extend(attributes_code)
        return f"def __init__({signature}):\n" + indent("".join(lines), 1)

    def build(self, steps: list[StepPlan], epoch_reviews: list) -> str:
        plan = self.plan
        methods: list[str] = []
        taken: set[str] = set()
        step_texts = [self.step(s, taken) for s in steps]
        attributes_code = []
        for attr in plan.attributes.values():
            if attr.expr is not None:
                attributes_code.append(f"self.{attr.name} = {code(self.move_expr(attr.expr, attr.subst))}\n")
        for name in state_names(plan):
            initial = plan.bindings[name].value
            attributes_code.append(f"self.{name} = {code(self.move_expr(initial, {}))}\n")
        bodies: dict[str, str] = {}
        stages = [s.stage for s in steps]
        for stage in ("train", "val", "test"):
            kept = [e for e in plan.epoch_statements if e.stage == stage]
            if kept and (stage in stages or stage == "train"):
                bodies[stage] = self.epoch_statements(kept)
        for s in steps:
            pending = []
            for node, _ in s.reviews:
                if node not in s.items and node not in pending:
                    pending.append(node)
            if pending:
                bodies[s.stage] = bodies.get(s.stage, "") + self.reviewed(pending, s.subst)
        if epoch_reviews:
            bodies["train"] = bodies.get("train", "") + self.reviewed(epoch_reviews, {})
        starts: dict[str, str] = {}
        if plan.optimizer is not None and plan.optimizer.per_call:
            starts["train"] = (
                "# The original built a new optimizer in every epoch's call: start each epoch from fresh state.\n"
                "self.optimizers().optimizer.state.clear()\n"
            )
        if plan.next_phase is not None:
            starts["train"] = starts.get("train", "") + self.next_phase(plan.next_phase)
        for s in steps:
            for attr, value in s.carried:
                starts[s.stage] = starts.get(s.stage, "") + f"self.{attr} = {code(self.move_expr(value, s.subst))}\n"
        hooks = [f"def {_EPOCH_START[stage]}(self):\n" + indent(body, 1) for stage, body in starts.items()]
        hooks += [self.epoch_end(stage, body) for stage, body in bodies.items()]
        configure = self.configure_optimizers()
        methods.append(self.init(attributes_code))
        forward = plan.model_name if self.manual is not None else "model"
        methods.append(f"def forward(self, *args, **kwargs):\n    return self.{forward}(*args, **kwargs)\n")
        methods.extend(step_texts)
        methods.extend(hooks)
        methods.append(configure)
        body = "\n".join(methods)
        return f"class {self.prefix}Module(LightningModule):\n" + indent(body, 1)


class _StopInsteadOfBreak(cst.CSTTransformer):
    """`break` out of the epoch loop, in an epoch-end hook: `self.trainer.should_stop = True`."""

    def visit_For(self, node: cst.For) -> bool:
        return False

    def visit_While(self, node: cst.While) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Break(self, original: cst.Break, updated: cst.Break) -> cst.BaseSmallStatement:
        return cst.parse_statement("self.trainer.should_stop = True\n").body[0]


def _log_item(plan: ScriptPlan, acc: Accumulator) -> LogItem | None:
    for step in [*plan.steps, *plan.after_loop_tests.values()]:
        for item in step.items:
            if isinstance(item, LogItem) and item.accumulator is acc:
                return item
    return None


def metric_logged(plan: ScriptPlan, acc: Accumulator) -> bool:
    return _log_item(plan, acc) is not None


def metric_name(plan: ScriptPlan, acc: Accumulator) -> str:
    """The name an accumulator is logged under."""
    item = _log_item(plan, acc)
    return item.final_name() if item is not None else acc.alias or acc.name


def state_names(plan: ScriptPlan) -> list[str]:
    """Driver names updated once per epoch: they live on the LightningModule."""
    names = []
    for item in plan.epoch_statements:
        for name in item.state:
            binding = plan.bindings.get(name)
            if binding is not None and binding.value is not None and name not in names:
                names.append(name)
    return names


def _target_names(target) -> list[str]:
    from migrate.analysis.nodes import target_names

    return target_names(target)
