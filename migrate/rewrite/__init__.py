"""ScriptPlan -> the converted module: the LightningModule and DataModule classes, the main
block (the epoch loop becomes Trainer(...).fit), imports, and device-call cleanup."""

from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from migrate.analysis.nodes import all_names, code, names_stored, names_used, target_names, unique_name
from migrate.analysis.plan import LogItem, ScriptPlan, StepPlan
from migrate.rewrite.datamodule import build_datamodule
from migrate.rewrite.device import clean_statements
from migrate.rewrite.module import ModuleBuilder, metric_logged, metric_name, state_names
from migrate.rewrite.names import Parameters
from migrate.substitution import substitute

PACKAGES = {"runtime": "runtime", "lightning": "lightning.pytorch"}


# File stems that say nothing about the model: their classes get Lightning's usual `Lit` prefix.
_GENERIC_STEMS = {"Stdin", "Original", "Main", "Train", "Training", "Script", "Run", "Model", "Example"}


def _prefix(plan: ScriptPlan) -> str:
    """The model class's name, else one from the file name (`mnist_cnn.py` -> MnistCnn), else `Lit`."""
    if plan.model_class:
        return plan.model_class
    stem = re.sub(r"[^A-Za-z0-9]+", " ", plan.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]).title().replace(" ", "")
    return stem if stem and stem[0].isalpha() and stem not in _GENERIC_STEMS else "Lit"



def _call(func: str, params: Parameters, leading: list[str] | None = None) -> str:
    args = list(leading or [])
    for name, expr in [*params.objects.items(), *params.plain.items()]:
        text = code(expr)
        args.append(f"{name}={text}")
    return f"{func}({', '.join(args)})"


def _callbacks(plan: ScriptPlan) -> list[str]:
    """The Trainer's callbacks: what the original's early stopping, best-weights saving and
    learning-rate printing become."""
    found = []
    stop = plan.stopping
    if stop is not None:
        monitor = metric_name(plan, stop.metric)
        if stop.patience is not None:
            args = [f"monitor={monitor!r}", f"mode={stop.mode!r}", f"patience={code(stop.patience)}"]
            if stop.min_delta is not None:
                args.append(f"min_delta={code(stop.min_delta)}")
            found.append(f"EarlyStopping({', '.join(args)})")
        if stop.save_path is not None:
            args = [f"monitor={monitor!r}", f"mode={stop.mode!r}", "save_top_k=1"]
            if stop.checkpoint_name is not None:
                args = [f"dirpath={stop.checkpoint_dir!r}", f"filename={stop.checkpoint_name!r}", *args]
            found.append(f"ModelCheckpoint({', '.join(args)})")
    if plan.lr_monitor:
        found.append('LearningRateMonitor(logging_interval="epoch")')
    return found


def _stopping_reads(plan: ScriptPlan, later: list, trainer: str) -> list:
    """The best value and the counter, where the code after training reads them: from the callbacks."""
    stop = plan.stopping
    if stop is None:
        return []
    used = set(names_used(later)) if later else set()
    reads = []
    if stop.best in used:
        source = (f"{trainer}.early_stopping_callback.best_score" if stop.patience is not None
                  else f"{trainer}.checkpoint_callback.best_model_score")
        reads.append(f"{stop.best} = {source}.item()\n")
    if stop.counter is not None and stop.counter in used:
        reads.append(f"{stop.counter} = {trainer}.early_stopping_callback.wait_count\n")
    return [cst.parse_statement(text) for text in reads]


def rewrite(module: cst.Module, plan: ScriptPlan, target: str = "runtime") -> str:
    """The converted script's text, before formatting."""
    if plan.module is not None:
        module = plan.module  # the script as analysed (a trainer class read as functions)
    taken = all_names(list(module.body))
    # The runtime's Trainer under another name where the script binds `Trainer` itself.
    trainer_cls = unique_name("LightningTrainer", taken) if "Trainer" in plan.module_names else "Trainer"
    prefix = _prefix(plan)
    module_cls = unique_name(f"{prefix}Module", taken)[: -len("Module")]
    data_cls = unique_name(f"{prefix}DataModule", taken)[: -len("DataModule")]
    device_names = set(_device_names(plan))

    builder = ModuleBuilder(plan, module_cls, device_names)
    val_steps = [s for s in plan.steps if s.stage == "val"][:1]
    train_steps = [s for s in plan.steps if s.stage == "train"][:1]
    test_steps = list(plan.after_loop_tests.values())[:1]
    module_src = builder.build(train_steps + val_steps + test_steps, plan.epoch_reviews)
    data_src, data_params, moved_loaders = build_datamodule(plan, data_cls)

    lit, dm, tr = (unique_name(n, taken) for n in ("lit_model", "datamodule", "trainer"))
    module_params = builder.names.params
    module_call = _call(f"{module_cls}Module", module_params, [plan.model_name] if plan.manual is None else plan.models)
    data_call = _call(f"{data_cls}DataModule", data_params)
    epochs = plan.epochs
    if m.matches(epochs, m.BinaryOperation(left=m.Integer(), operator=m.Subtract(), right=m.Integer())):
        epochs = cst.Integer(str(int(epochs.left.value) - int(epochs.right.value)))
    trainer_args = [f"max_epochs={code(epochs)}"]
    trainer_args.append(f"accelerator={code(plan.accelerator)}" if plan.accelerator is not None else 'accelerator="auto"')
    train = train_steps[0] if train_steps else None
    if train is not None and train.log_every is not None:
        trainer_args.append(f"log_every_n_steps={code(train.log_every)}")
    if train is not None and train.limit_batches is not None:
        trainer_args.append(f"limit_train_batches={code(train.limit_batches)}")
    trainer_args += [
        f"{name}={code(value)}"
        for name, value in plan.trainer_args.items()
        if not (name == "log_every_n_steps" and train is not None and train.log_every is not None)
    ]
    callbacks = _callbacks(plan)
    if callbacks:
        trainer_args.append(f"callbacks=[{', '.join(callbacks)}]")
    fit_src = (
        f"{lit} = {module_call}\n{dm} = {data_call}\n"
        f"{tr} = {trainer_cls}({', '.join(trainer_args)})\n{tr}.fit({lit}, datamodule={dm})\n"
    )
    fit_block = list(cst.parse_module(fit_src).body)
    loop_comments = plan.epoch_loop.leading_lines
    if loop_comments:
        fit_block[0] = fit_block[0].with_changes(leading_lines=loop_comments)

    # The driver: the loop becomes the fit block; moved definitions go.
    removable: dict[int, set[str]] = {}
    state = state_names(plan)
    moved_names = set(plan.attributes) | moved_loaders | device_names | set(state) | _availability_flags(plan)
    moved_names |= plan.replaced_names
    replaced = _replaced_bindings(plan)
    if plan.stopping is not None and plan.stopping.path_name and plan.stopping.checkpoint_name:
        moved_names.add(plan.stopping.path_name)
    if plan.optimizer is not None:
        moved_names.add(plan.optimizer.name)
    if plan.manual is not None:
        moved_names.update(plan.manual.optimizers)
    if plan.scheduler is not None:
        moved_names.add(plan.scheduler.name)
    for name in moved_names:
        binding = plan.bindings.get(name)
        if binding is not None and binding.index >= 0:
            removable.setdefault(binding.index, set()).update(names_stored(binding.statement))

    body: list[tuple[int, cst.BaseStatement]] = []
    after_loop = False
    on_module = {name: cst.parse_expression(f"{lit}.{name}") for name in state}
    for index, stmt in enumerate(plan.driver_body):
        later = plan.driver_body[index + 1 :]
        if stmt is plan.epoch_loop:
            after_loop = True
            body.extend((-2, s) for s in fit_block)
            body.extend((-2, s) for s in _read_back(plan, later, f"{tr}.callback_metrics", ".item()"))
            body.extend((-2, s) for s in _stopping_reads(plan, later, tr))
        elif index in replaced:
            continue
        elif plan.stopping is not None and stmt is plan.stopping.reload:
            body.append((-2, _reload(plan, stmt, lit, f"{module_cls}Module", module_params, tr, bool(state))))
        elif index in plan.after_loop_tests:
            step = plan.after_loop_tests[index]
            reads = _read_back(plan, later, "test_metrics", "", step)
            call = f"{tr}.test({lit}, datamodule={dm})"
            test_stmt = cst.parse_statement(f"test_metrics = {call}[0]\n" if reads else f"{call}\n")
            body.append((-2, test_stmt.with_changes(leading_lines=stmt.leading_lines)))
            body.extend((-2, s) for s in reads)
        elif id(stmt) in plan.dropped_statements:
            continue
        elif id(stmt) in plan.reviewed_statements:
            marker = cst.EmptyLine(comment=cst.Comment(plan.reviewed_statements[id(stmt)]))
            body.append((index, stmt.with_changes(leading_lines=[*stmt.leading_lines, marker])))
        else:
            if after_loop and on_module:
                stmt = substitute(stmt, on_module)
            for cleaned in clean_statements([stmt], device_names, plan.model_name):
                body.append((index, cleaned))
    # Drop the moved definitions unless the remaining code still reads them.
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    while True:
        remaining = [s for i, s in body if i not in removable]
        used = set(names_used(remaining)) | _read_through_calls(remaining, functions)
        drop = {i for i in removable if not (removable[i] & used)}
        still = [(i, s) for i, s in body if i not in drop]
        if len(still) == len(body):
            break
        body = still
        removable = {i: n for i, n in removable.items() if i not in drop}
    new_driver = [s for _, s in body]

    generated = {_placeholder(i): src for i, src in enumerate((module_src, data_src))}
    blank = [cst.EmptyLine(), cst.EmptyLine()]
    stand_ins = [
        cst.SimpleStatementLine([cst.Expr(cst.Name(name))], leading_lines=blank) for name in generated
    ]
    assembled = _assemble(module, plan, new_driver, stand_ins, _imports(plan, target, callbacks, trainer_cls)).code
    for name, src in generated.items():
        assembled = assembled.replace(f"{name}\n", src, 1)
    return assembled


def _imports(plan: ScriptPlan, target: str, callbacks: list[str], trainer_cls: str = "Trainer") -> str:
    package = PACKAGES.get(target, PACKAGES["runtime"])
    trainer = "Trainer" if trainer_cls == "Trainer" else f"Trainer as {trainer_cls}"
    lines = f"from {package} import LightningDataModule, LightningModule, {trainer}\n"
    if callbacks:
        lines += f"from {package}.callbacks import {', '.join(sorted(call.split('(', 1)[0] for call in callbacks))}\n"
    if "logger" in plan.trainer_args:
        lines += f"from {package}.loggers import {code(plan.trainer_args['logger'].func)}\n"
    return lines


def _replaced_bindings(plan: ScriptPlan) -> set[int]:
    """Driver statements that only set up what a callback now tracks (`best = float("inf")`,
    `bad_epochs = 0`): they go even where later code reads the names, which then read the callback."""
    stop = plan.stopping
    if stop is None:
        return set()
    tracked = {stop.best, stop.counter} - {None}
    indices = set()
    for name in tracked:
        binding = plan.bindings.get(name)
        if binding is not None and binding.index >= 0 and names_stored(binding.statement) <= tracked:
            indices.add(binding.index)
    return indices


def _reload(plan: ScriptPlan, stmt, lit: str, module_cls: str, params, trainer: str, has_state: bool):
    """`model.load_state_dict(torch.load(path))` -> the module rebuilt from the best checkpoint, which
    loads its weights into the same `model` object. Where the module also holds epoch-level state
    that later code reads, the call does not rebind the module, so that state stays."""
    args = [f"{trainer}.checkpoint_callback.best_model_path", f"model={plan.model_name}"]
    args += [f"{name}={code(expr)}" for name, expr in params.objects.items()]
    call = f"{module_cls}.load_from_checkpoint({', '.join(args)})"
    text = f"{call}\n" if has_state else f"{lit} = {call}\n"
    return cst.parse_statement(text).with_changes(leading_lines=stmt.leading_lines)


def _placeholder(index: int) -> str:
    """The generated classes are text; they go into the output as text, in place of a stand-in
    statement, because parsing them only to print them again would cost as much as the
    whole analysis."""
    return f"__migrate_generated_class_{index}__"


def _read_back(plan: ScriptPlan, later: list, source: str, suffix: str, step: StepPlan | None = None) -> list:
    """`name = <source>["metric"]<suffix>` for each evaluation result the code after training reads:
    the metrics of the last epoch (from `trainer.callback_metrics`), or of `trainer.test`."""
    if step is None:
        metrics = {name: acc for name, acc in plan.epoch_metrics.items() if metric_logged(plan, acc)}
    else:
        metrics = {
            item.accumulator.alias: item.accumulator
            for item in step.items
            if isinstance(item, LogItem) and item.accumulator is not None and item.accumulator.alias
        }
    used = set(names_used(later)) if later else set()
    return [
        cst.parse_statement(f"{name} = {source}[{metric_name(plan, acc)!r}]{suffix}\n")
        for name, acc in metrics.items()
        if name in used
    ]


def _availability_flags(plan: ScriptPlan) -> set[str]:
    """`use_cuda = torch.cuda.is_available()`: dropped with the device calls it guarded, when unread."""
    from migrate.analysis import device as dev

    return {name for name, binding in plan.bindings.items() if dev.is_availability(binding.value)}


def _device_names(plan: ScriptPlan):
    from migrate.analysis import device as dev

    for name, binding in plan.bindings.items():
        if binding.value is not None and dev.is_device_value(binding.value):
            yield name
        elif binding.value is None and isinstance(binding.statement, cst.If) and dev.device_if(binding.statement):
            yield name


def _is_definition(stmt: cst.CSTNode) -> bool:
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return True
    return isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _is_import(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _header_names(stmt: cst.CSTNode) -> set[str]:
    """Names a def/class reads when it is defined (decorators, defaults, bases, class body)."""
    nodes: list[cst.CSTNode] = []
    if isinstance(stmt, cst.FunctionDef):
        nodes += [d for d in stmt.decorators] + [p.default for p in stmt.params.params if p.default is not None]
    elif isinstance(stmt, cst.ClassDef):
        nodes += list(stmt.decorators) + [b.value for b in stmt.bases]
        nodes += [s for s in stmt.body.body if not isinstance(s, cst.FunctionDef)]
        methods = [s for s in stmt.body.body if isinstance(s, cst.FunctionDef)]
        return set(names_used(nodes)).union(*(_header_names(method) for method in methods))
    return set(names_used(nodes)) if nodes else set()


def _assemble(module: cst.Module, plan: ScriptPlan, driver: list, generated: list, import_lines: str) -> cst.Module:
    import_stmts = list(cst.parse_module(import_lines).body)
    removed = {name for name in plan.removed_functions}
    original = list(module.body)
    if plan.driver_kind == "module":
        rest = [s for s in original if s not in plan.driver_body]
        definitions = [s for s in original if _is_definition(s)]
        docstring = []
        if original and m.matches(original[0], m.SimpleStatementLine(body=[m.Expr(m.SimpleString())])):
            docstring = [original[0]]
        executables = [s for s in driver if not _is_definition(s) and s not in docstring]
        stored = names_stored(executables)
        conflict = any(_header_names(s) & stored for s in definitions)
        if not conflict:
            kept_defs = [s for s in driver if _is_definition(s)]
            kept_defs = _drop_functions(kept_defs, removed, executables)
            guard = cst.If(
                test=cst.parse_expression('__name__ == "__main__"'),
                body=cst.IndentedBlock(body=executables),
                leading_lines=[cst.EmptyLine(), cst.EmptyLine()],
            )
            body = docstring + _with_import(kept_defs, import_stmts) + generated + [guard]
        else:
            driver = [s for s in _drop_functions(driver, removed, driver) if s not in docstring]
            first_exec = next((i for i, s in enumerate(driver) if not _is_definition(s)), len(driver))
            body = docstring + _with_import(driver[:first_exec], import_stmts) + generated + driver[first_exec:]
        return module.with_changes(body=body + [s for s in rest if s not in docstring])
    # The driver is a function or the __main__ block: replace its body in place.
    new_body = []
    for stmt in original:
        if isinstance(stmt, cst.FunctionDef) and plan.driver_kind == "function" and stmt.name.value == plan.driver_function:
            new_body.extend(generated)
            new_body.append(stmt.with_changes(body=stmt.body.with_changes(body=driver)))
        elif isinstance(stmt, cst.If) and plan.driver_kind == "main_guard" and list(stmt.body.body) == plan.driver_body:
            new_body.extend(generated)
            new_body.append(stmt.with_changes(body=stmt.body.with_changes(body=driver)))
        else:
            new_body.append(stmt)
    new_body = _drop_functions(new_body, removed, new_body)
    return module.with_changes(body=_with_import(new_body, import_stmts))


def _read_through_calls(stmts: list, functions: dict[str, cst.FunctionDef]) -> set[str]:
    """Names the module-level functions these statements call (and those call) read: a helper
    kept for code the converter left alone still needs the globals it uses."""
    read: set[str] = set()
    pending = [name for name in names_used(stmts) if name in functions]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        names = names_used(list(functions[name].body.body))
        read.update(names)
        pending.extend(n for n in names if n in functions)
    return read


def _drop_functions(stmts: list, removed: set[str], users: list) -> list:
    """The converted loop helpers go, unless something else still calls them."""
    out = []
    for stmt in stmts:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in removed:
            others = [s for s in users if s is not stmt]
            if stmt.name.value not in names_used(others):
                continue
        out.append(stmt)
    return out


def _with_import(stmts: list, import_stmts: list) -> list:
    """Adds the runtime import after the leading imports (or the last import before code)."""
    last = -1
    for i, stmt in enumerate(stmts):
        if _is_import(stmt):
            last = i
        elif i > 0 and not m.matches(stmt, m.SimpleStatementLine(body=[m.Expr(m.SimpleString())])) and last >= 0:
            break
    if last == -1:
        return [*import_stmts, *stmts]
    return [*stmts[: last + 1], *import_stmts, *stmts[last + 1 :]]
