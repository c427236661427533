"""A hand-written trainer class (the pytorch-template layout), read as the script it stands for.

    class Trainer:
        def __init__(self, model, criterion, optimizer, train_loader, valid_loader, device, epochs):
            self.model = model
            ...
        def train_epoch(self, epoch):
            ...
            return {"loss": total_loss / n, "acc": total_correct / n}
        def fit(self):
            for epoch in range(1, self.epochs + 1):
                log = {"epoch": epoch}
                log.update(self.train_epoch(epoch))
                ...
                print(f"... train_loss={log['loss']:.4f} ...")

    def main():
        ...
        trainer = Trainer(model, criterion, optimizer, train_loader, valid_loader, device, epochs=3)
        trainer.fit()

means the same as the functional script

    def train_epoch(epoch, *, model, criterion, optimizer, train_loader, device):
        ...
        return total_loss / n, total_correct / n

    def main():
        ...
        for epoch in range(1, 3 + 1):
            loss, acc = train_epoch(epoch, model=model, criterion=criterion, ...)
            ...
            print(f"... train_loss={loss:.4f} ...")

`read` builds that script as libcst nodes, and the rest of the analysis reads it as it reads
any other. The method that loops over epochs is inlined where the driver called it;
`self.<attr>` becomes the expression the constructor was given for it, or a driver variable
for state the class sets up itself (`self.history = []`); the methods it calls become
module-level functions that take the attributes they read as keyword arguments; a dict of
results becomes one name per key. Every node built from the class is aliased to the node it
came from, so findings point at the class's lines.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from migrate.analysis.loops import bind_call, function_training, is_range_loop
from migrate.analysis.nodes import (
    all_names,
    call_name,
    dotted,
    expr_statement,
    find,
    has_backward,
    method_call,
    names_stored,
    names_used,
    simple_assign,
    small,
    unique_name,
    walk,
)
from migrate.analysis.positions import Positions
from migrate.findings import Finding, Severity
from migrate.substitution import NameLoads

SELF = "self"
_MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "appendleft"})
_DICT_MUTATORS = frozenset({"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"})
_BUILT_EMPTY = frozenset({"list", "dict", "set", "tuple", "float", "int", "str", "bool"})


class Unsupported(Exception):
    """The class does something the functional reading cannot say."""


@dataclass
class Reading:
    """The functional script, and where its epoch loop is (as `find_driver` reports it)."""

    module: cst.Module
    kind: str
    function: str | None
    body: list[cst.BaseStatement]
    loop: cst.For
    findings: list[Finding]


@dataclass
class _Use:
    """`trainer = Cls(...)` ... `trainer.fit()` (or `Cls(...).fit()`) in a driver body."""

    ctor: int  # index of the statement that constructs the class
    call: cst.Call  # the constructor call
    var: str | None  # the name it is bound to; None for `Cls(...).fit()`
    fit: int  # index of the statement that calls the epoch method
    fit_call: cst.Call
    method: str
    result: cst.BaseAssignTargetExpression | None  # `history = trainer.fit()`


class TrainerClass:
    """A plain class (no bases) whose `__init__` stores attributes and one of whose methods
    runs a `for ... in range(...)` loop that trains."""

    def __init__(self, node: cst.ClassDef, methods: dict[str, cst.FunctionDef]) -> None:
        self.node = node
        self.name = node.name.value
        self.methods = methods

    @classmethod
    def of(cls, node: cst.CSTNode) -> TrainerClass | None:
        if not isinstance(node, cst.ClassDef) or node.decorators or node.keywords:
            return None
        if any(dotted(base.value) != "object" or base.keyword is not None for base in node.bases):
            return None
        methods: dict[str, cst.FunctionDef] = {}
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef):
                if not _plain_method(stmt):
                    return None
                methods[stmt.name.value] = stmt
            elif not (_docstring(stmt) or m.matches(stmt, m.SimpleStatementLine(body=[m.Pass()]))):
                return None  # class attributes: `self.x` could mean them
        if "__init__" not in methods:
            return None
        return cls(node, methods)

    def epoch_loop(self, method: str) -> int | None:
        """Index, in `method`'s body, of its loop over epochs that trains; None without one."""
        fn = self.methods.get(method)
        if fn is None or method == "__init__":
            return None
        for index, stmt in enumerate(fn.body.body):
            if isinstance(stmt, cst.For) and is_range_loop(stmt) and self._trains(stmt):
                return index
        return None

    def _trains(self, loop: cst.For) -> bool:
        if has_backward(loop):
            return True
        for call in find(loop.body, cst.Call):
            mc = method_call(call)
            if mc and dotted(mc[0]) == SELF and mc[1] in self.methods and function_training(self.methods[mc[1]]):
                return True
        return False

    def uses(self, body: list[cst.BaseStatement]) -> Iterable[_Use]:
        for index, stmt in enumerate(body):
            call, target = _call_of(stmt)
            if call is None:
                continue
            if call_name(call) == self.name and isinstance(target, cst.Name):
                var = target.value
                for later in range(index + 1, len(body)):
                    fit_call, result = _call_of(body[later])
                    mc = method_call(fit_call)
                    if mc and dotted(mc[0]) == var and self.epoch_loop(mc[1]) is not None:
                        yield _Use(index, call, var, later, fit_call, mc[1], result)
                        break
                    if var in names_stored(body[later]):
                        break
                continue
            mc = method_call(call)
            if (
                mc
                and isinstance(mc[0], cst.Call)
                and call_name(mc[0]) == self.name
                and self.epoch_loop(mc[1]) is not None
            ):
                yield _Use(index, mc[0], None, index, call, mc[1], target)


def read(
    module: cst.Module,
    drivers: list[tuple[str, str | None, cst.CSTNode | None, list[cst.BaseStatement]]],
    positions: Positions,
    path: str,
) -> Reading | None:
    """The functional reading of the first trainer class a driver constructs and fits.

    `drivers`: (kind, function name, the node holding the body or None for the module, body)."""
    for stmt in module.body:
        trainer = TrainerClass.of(stmt)
        if trainer is None or not any(trainer.epoch_loop(name) is not None for name in trainer.methods):
            continue
        for kind, name, holder, body in drivers:
            for use in trainer.uses(body):
                try:
                    return _Builder(module, trainer, positions, path, kind, name, holder, body, use).build()
                except Unsupported:
                    continue
    return None


class _Tracked(NameLoads):
    """A transformer that reports every node it rebuilds where the node it came from was."""

    def __init__(self, positions: Positions) -> None:
        super().__init__()
        self.positions = positions

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if result is updated and isinstance(updated, cst.CSTNode):
            self.positions.alias(updated, original)
        return result


class _Rename(_Tracked):
    """`<var>.<attr>` -> attrs[attr]; `<var>.<method>(...)` -> calls(method, call); loaded
    names in `names` -> names[...]."""

    def __init__(
        self,
        positions: Positions,
        attrs: dict[str, cst.BaseExpression],
        names: dict[str, cst.BaseExpression] | None = None,
        calls: Callable[[str, cst.Call, cst.Call], cst.BaseExpression | None] | None = None,
        var: str = SELF,
    ) -> None:
        super().__init__(positions)
        self.attrs, self.names, self.calls, self.var = attrs, names or {}, calls, var

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if isinstance(original.value, cst.Name) and original.value.value == self.var:
            found = self.attrs.get(original.attr.value)
            if found is not None:
                return found.deep_clone()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = original.func
        if (
            self.calls is not None
            and isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.value.value == self.var
        ):
            replaced = self.calls(func.attr.value, original, updated)
            if replaced is not None:
                return replaced
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if not self.is_load(original):
            return updated
        found = self.names.get(original.value)
        return found.deep_clone() if found is not None else updated


class _Escapes(Exception):
    """A dict is used in a way that one name per key cannot say."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _ReadDicts(_Tracked):
    """`log["loss"]` -> the name holding that key; a whole `log` -> a dict display of them."""

    def __init__(self, positions: Positions, dicts: dict[str, dict[str, cst.BaseExpression]]) -> None:
        super().__init__(positions)
        self.dicts = dicts

    def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
        self._skip_targets(node.target)
        return True

    def visit_AugAssign(self, node: cst.AugAssign) -> bool:
        self._skip_targets(node.target)
        return True

    def visit_For(self, node: cst.For) -> bool:
        self._skip_targets(node.target)
        return True

    def _skip_targets(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            self._skip.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._skip_targets(element.value)
        elif isinstance(target, cst.StarredElement):
            self._skip_targets(target.value)

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        if isinstance(original.value, cst.Name) and original.value.value in self.dicts:
            name = original.value.value
            key = _key(original)
            if key is None or key not in self.dicts[name]:
                raise _Escapes(name)
            return self.dicts[name][key].deep_clone()
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if not self.is_load(original) or original.value not in self.dicts:
            return updated
        return _display(self.dicts[original.value])


class _Builder:
    def __init__(self, module, trainer: TrainerClass, positions: Positions, path: str, kind, function, holder, body, use: _Use):
        self.module, self.trainer, self.positions, self.path = module, trainer, positions, path
        self.kind, self.function, self.holder, self.body, self.use = kind, function, holder, body, use
        self.findings: list[Finding] = []
        fit = trainer.methods[use.method]
        others = [s for s in module.body if s is not trainer.node]
        self.taken = all_names(others) | all_names(fit)
        self.attrs: dict[str, cst.BaseExpression] = {}  # attribute -> its expression in the driver
        self.state: dict[str, tuple[str, cst.BaseStatement | None, cst.BaseExpression | None]] = {}
        self.state_origin: dict[str, cst.CSTNode] = {}
        self.functions: dict[str, cst.FunctionDef] = {}  # method -> its functional form
        self.function_names: dict[str, str] = {}
        self.attr_params: dict[str, dict[str, str]] = {}  # method -> attribute -> parameter
        self.dict_keys: dict[str, list[str]] = {}  # function name -> keys of the dict it returns
        self.dict_returns: dict[str, cst.CSTNode] = {}  # function name -> the original `return {...}`
        self.unpacked: set[int] = set()  # ids of calls to dict-returning functions read key by key
        self.flattened: dict[str, list[str]] = {}  # method -> keys read

    # --- the whole reading -----------------------------------------------------------------
    def build(self) -> Reading:
        use, body, trainer = self.use, self.body, self.trainer
        between = body[use.ctor + 1 : use.fit]
        site = self._construct(between)
        fit_site, fit_body, loop_index = self._fit()

        middle = [self._driver_statement(stmt) for stmt in between]
        after = [self._driver_statement(stmt) for stmt in body[use.fit + 1 :]]

        loop = fit_body[loop_index]
        outside = all_names([*fit_body[:loop_index], *fit_body[loop_index + 1 :], *after])
        new_loop_body = self._flatten(list(loop.body.body), outside=outside)
        new_loop = loop.with_changes(body=loop.body.with_changes(body=new_loop_body))
        self.positions.alias(new_loop, trainer.methods[use.method].body.body[loop_index])
        fit_body[loop_index] = new_loop

        driver = [*body[: use.ctor], *site, *middle, *fit_site, *fit_body, *after]
        driver = self._flatten(driver, skip=new_loop)
        self._check_unpacked(driver)
        driver, new_loop = self._drop_dead_state(driver, new_loop)
        # the blank lines and comments above the construction stay above what replaces it
        before = {id(s) for s in body[: use.ctor]}
        index = next((i for i, s in enumerate(driver) if id(s) not in before), None)
        if index is not None and not driver[index].leading_lines and body[use.ctor].leading_lines:
            first = driver[index].with_changes(leading_lines=body[use.ctor].leading_lines)
            self.positions.alias(first, driver[index])
            if driver[index] is new_loop:
                new_loop = first
            driver[index] = first

        kept = self._class_used(driver)
        functions = [self.functions[name] for name in self.functions]
        class_stmts = ([trainer.node] if kept else []) + functions
        if self.kind == "module":
            index = driver.index(trainer.node) if trainer.node in driver else None
            if index is None:
                raise Unsupported("the class is defined after the driver")
            driver = [*driver[:index], *class_stmts, *driver[index + 1 :]]
            new_module = self.module.with_changes(body=driver)
        else:
            new_body: list[cst.BaseStatement] = []
            for stmt in self.module.body:
                if stmt is trainer.node:
                    new_body.extend(class_stmts)
                elif stmt is self.holder:
                    replaced = stmt.with_changes(body=stmt.body.with_changes(body=driver))
                    self.positions.alias(replaced, stmt)
                    new_body.append(replaced)
                else:
                    new_body.append(stmt)
            new_module = self.module.with_changes(body=new_body)
        fate = "the class is kept: other code uses it" if kept else "class removed"
        self._add(
            trainer.node,
            "MIG150",
            f"hand-written trainer class {trainer.name}: its {use.method}() loop converted; {fate}",
        )
        for method, keys in self.flattened.items():
            self._add(
                self.dict_returns[self.function_names[method]],
                "MIG152",
                f"{trainer.name}.{method}() returns a dict: its keys ({', '.join(keys)}) read as separate results",
            )
        return Reading(new_module, self.kind, self.function, driver, new_loop, self.findings)

    def _add(self, node: cst.CSTNode, code: str, message: str) -> None:
        span = self.positions.span(node)
        self.findings.append(Finding(self.path, span.line, span.col, code, Severity.INFO, message))

    # --- the constructor -------------------------------------------------------------------
    def _construct(self, between: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        """The attributes `__init__` sets, as driver expressions; the statements that stand for
        the construction (arguments that must be evaluated once, the class's own state)."""
        init = self.trainer.methods["__init__"]
        stmt = self.body[self.use.ctor]
        args = self._bind(init, self.use.call, stmt, set(names_stored(between)) if between else set())
        site = args.pop("__site__")
        for line in init.body.body:
            if _docstring(line) or m.matches(line, m.SimpleStatementLine(body=[m.Pass()])) or _super_init(line):
                continue
            node = small(line)
            if isinstance(node, cst.Assign) and len(node.targets) == 1:
                target, value = node.targets[0].target, node.value
            elif isinstance(node, cst.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                raise Unsupported("__init__ does more than set attributes")
            attr = _self_attr(target)
            if attr is None:
                raise Unsupported("__init__ assigns something else than an attribute")
            core = _strip_device(value)
            if isinstance(core, cst.Name) and core.value in args and attr not in self.state:
                self.attrs[attr] = args[core.value]
                continue
            rewritten = value.visit(_Rename(self.positions, dict(self.attrs), args))
            if SELF in all_names(rewritten):
                raise Unsupported("__init__ reads self in a way the reading cannot say")
            name = self.state[attr][0] if attr in self.state else unique_name(attr, self.taken)
            assign = _assign(cst.Name(name), rewritten, line, self.positions)
            site.append(assign)
            self.state[attr] = (name, assign, rewritten)
            self.state_origin.setdefault(attr, line)
            self.attrs[attr] = cst.Name(name)
        return site

    def _bind(self, fn: cst.FunctionDef, call: cst.Call, stmt, rebound: set[str]) -> dict:
        """Parameter -> the expression standing for its argument; `__site__`: the statements
        binding the arguments that must be evaluated once, in the order Python evaluates them."""
        bound = bind_call(_unbound(fn), call)
        if bound is None:
            raise Unsupported("the call does not bind")
        order = [p.name.value for p in fn.params.params[1:]][: sum(1 for a in call.args if a.keyword is None)]
        order += [a.keyword.value for a in call.args if a.keyword is not None]
        order += [name for name in bound if name not in order]
        site: list[cst.BaseStatement] = []
        out: dict = {}
        for name in order:
            expr = bound[name]
            if _simple(expr) and not (set(names_used(expr)) & rebound):
                out[name] = expr
                continue
            fresh = unique_name(name, self.taken)
            site.append(_assign(cst.Name(fresh), expr, stmt, self.positions))
            out[name] = cst.Name(fresh)
        out["__site__"] = site
        return out

    # --- the epoch method, inlined ---------------------------------------------------------
    def _fit(self) -> tuple[list, list, int]:
        use, trainer = self.use, self.trainer
        fit = trainer.methods[use.method]
        stmt = self.body[use.fit]
        args = self._bind(fit, use.fit_call, stmt, set())
        site = args.pop("__site__")
        # attributes the epoch method assigns: driver variables (a caller's argument stays as it was)
        for target in _stored_targets(fit.body):
            attr = _self_attr(target)
            if attr is None or attr in self.state:
                continue
            name = unique_name(attr, self.taken)
            if attr in self.attrs:
                site.append(_assign(cst.Name(name), self.attrs[attr], stmt, self.positions))
                self.state[attr] = (name, site[-1], self.attrs[attr])
            else:
                self.state[attr] = (name, None, None)
            self.state_origin.setdefault(attr, target)
            self.attrs[attr] = cst.Name(name)
        if names_stored(fit.body) & set(args):
            raise Unsupported("the epoch method assigns its own parameters")
        locals_ = names_stored(fit.body)
        later = set(names_used(self.body[use.fit + 1 :]))
        outer = set(names_used([*self.attrs.values(), *(v for k, v in args.items())]))
        if locals_ & (later | outer):
            raise Unsupported("the epoch method's locals clash with the driver's names")
        rename = _Rename(self.positions, self.attrs, args, self._method_call)
        stmts = [s.visit(rename) for s in fit.body.body]
        loop_index = trainer.epoch_loop(use.method)
        returns = find(fit.body, cst.Return)
        if returns:
            last = small(stmts[-1])
            if len(returns) != 1 or not isinstance(last, cst.Return):
                raise Unsupported("the epoch method returns early")
            origin = fit.body.body[-1]
            stmts = stmts[:-1]
            value = last.value
            if use.result is not None:
                stmts.append(_assign(use.result, value or cst.Name("None"), origin, self.positions))
            elif value is not None and not _pure(value):
                stmts.append(cst.SimpleStatementLine([cst.Expr(value)]))
                self.positions.alias(stmts[-1], origin)
        elif use.result is not None:
            stmts.append(_assign(use.result, cst.Name("None"), stmt, self.positions))
        if SELF in all_names(stmts):
            raise Unsupported("the epoch method uses self in a way the reading cannot say")
        return site, stmts, loop_index

    def _driver_statement(self, stmt: cst.BaseStatement) -> cst.BaseStatement:
        """A driver statement that may read the trainer: `trainer.attr`, `trainer.method(...)`."""
        var = self.use.var
        if var is None or var not in all_names(stmt):
            return stmt
        new = stmt.visit(_Rename(self.positions, self.attrs, None, self._method_call, var=var))
        if var in all_names(new):
            raise Unsupported("the driver uses the trainer object itself")
        return new

    # --- the other methods, as functions ---------------------------------------------------
    def _method_call(self, method: str, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        if method not in self.trainer.methods:
            return None
        if method in ("__init__", self.use.method):
            raise Unsupported("the epoch method calls itself or __init__")
        name = self._function(method)
        extra = [
            cst.Arg(value=self.attrs[attr].deep_clone(), keyword=cst.Name(param), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
            for attr, param in self.attr_params[method].items()
        ]
        call = cst.Call(func=cst.Name(name), args=[*updated.args, *extra])
        self.positions.alias(call, original)
        return call

    def _function(self, method: str) -> str:
        if method in self.function_names:
            return self.function_names[method]
        fn = self.trainer.methods[method]
        for target in _stored_targets(fn.body):
            if _self_attr(target) is not None:
                raise Unsupported(f"{method}() sets an attribute")
        read: list[str] = []
        for node in walk(fn.body):
            if isinstance(node, cst.Attribute) and dotted(node.value) == SELF:
                if node.attr.value not in self.attrs:
                    raise Unsupported(f"{method}() reads self.{node.attr.value}, which __init__ does not set")
                if node.attr.value not in read:
                    read.append(node.attr.value)
        local = all_names(fn)
        params = {attr: unique_name(attr, local) for attr in read}
        body = fn.body.visit(_Rename(self.positions, {a: cst.Name(p) for a, p in params.items()}))
        if SELF in all_names(body):
            raise Unsupported(f"{method}() uses self in a way the reading cannot say")
        name = unique_name(method, self.taken)
        body = self._dict_return(fn, body, name)
        kwonly = [*fn.params.kwonly_params, *(cst.Param(cst.Name(p)) for p in params.values())]
        star = fn.params.star_arg
        if kwonly and not isinstance(star, cst.ParamStar):
            star = cst.ParamStar()
        new_params = fn.params.with_changes(params=fn.params.params[1:], kwonly_params=kwonly, star_arg=star)
        function = fn.with_changes(name=cst.Name(name), params=new_params, body=body)
        self.positions.alias(function, fn)
        self.functions[method] = function
        self.function_names[method] = name
        self.attr_params[method] = params
        return name

    def _dict_return(self, fn: cst.FunctionDef, body: cst.IndentedBlock, name: str) -> cst.IndentedBlock:
        """`return {"loss": a, "acc": b}` as the method's only return, at its end: `return a, b`."""
        returns = find(fn.body, cst.Return)
        if len(returns) != 1 or not fn.body.body or small(fn.body.body[-1]) is not returns[0]:
            return body
        last = small(body.body[-1])
        items = _dict_items(last.value) if isinstance(last, cst.Return) and last.value is not None else None
        if not items:
            return body
        values = [value for _, value in items]
        value = values[0] if len(values) == 1 else cst.Tuple([cst.Element(v) for v in values], lpar=[], rpar=[])
        new_return = last.with_changes(value=value)
        line = body.body[-1].with_changes(body=[new_return])
        self.positions.alias(new_return, returns[0])
        self.positions.alias(line, fn.body.body[-1])
        self.dict_keys[name] = [key for key, _ in items]
        self.dict_returns[name] = fn.body.body[-1]
        return body.with_changes(body=[*body.body[:-1], line])

    # --- dicts of results, one name per key ------------------------------------------------
    def _flatten(self, stmts: list, skip: cst.CSTNode | None = None, outside: set[str] = frozenset()) -> list:
        """`stmts` with each dict of results they build replaced by one name per key. `skip`: a
        statement left as it is; `outside`: names read after `stmts`, where a dict cannot go."""
        excluded: set[str] = set()
        while True:
            try:
                return self._flatten_once(stmts, excluded, skip, outside)
            except _Escapes as escaped:
                if escaped.name in excluded:
                    raise Unsupported("a dict of results") from None
                excluded.add(escaped.name)

    def _flatten_once(self, stmts: list, excluded: set[str], skip, outside: set[str]) -> list:
        dicts: dict[str, dict[str, cst.BaseExpression]] = {}
        stored_anywhere = names_stored(stmts)
        out: list = []
        for stmt in stmts:
            if stmt is skip:
                for name in dicts:
                    if name in all_names(stmt):
                        raise _Escapes(name)
                out.append(stmt)
                continue
            out.extend(self._flatten_statement(stmt, dicts, excluded, stored_anywhere))
            for name in set(dicts) & outside:
                raise _Escapes(name)
        return out

    def _flatten_statement(self, stmt, dicts, excluded: set[str], stored_anywhere: set[str]) -> list:
        one = simple_assign(stmt)
        expr = expr_statement(stmt)
        if one and one[0] not in excluded:
            name, value = one
            keys = self._dict_call(value)
            if keys is not None:
                dicts[name] = {}
                return [self._unpack(stmt, name, keys, value, dicts)]
            items = _dict_items(value)
            if items is not None:
                mapping: dict[str, cst.BaseExpression] = {}
                lines = self._bind_items(stmt, name, items, dicts, mapping, stored_anywhere)
                dicts[name] = mapping
                return lines
        mc = method_call(expr)
        if mc and isinstance(mc[0], cst.Name) and mc[0].value in dicts and mc[1] == "update":
            name = mc[0].value
            if len(expr.args) == 1 and expr.args[0].keyword is None and not expr.args[0].star:
                arg = expr.args[0].value
                keys = self._dict_call(arg)
                if keys is not None:
                    return [self._unpack(stmt, name, keys, arg, dicts)]
                if isinstance(arg, cst.Name) and arg.value in dicts:
                    dicts[name].update(dicts[arg.value])
                    return []
                items = _dict_items(arg)
                if items is not None:
                    return self._bind_items(stmt, name, items, dicts, dicts[name], stored_anywhere)
            elif expr.args and all(a.keyword is not None and not a.star for a in expr.args):
                items = [(a.keyword.value, a.value) for a in expr.args]
                return self._bind_items(stmt, name, items, dicts, dicts[name], stored_anywhere)
            raise _Escapes(name)
        node = small(stmt)
        if (
            isinstance(node, cst.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Subscript)
            and isinstance(node.targets[0].target.value, cst.Name)
            and node.targets[0].target.value.value in dicts
        ):
            name = node.targets[0].target.value.value
            key = _key(node.targets[0].target)
            if key is None:
                raise _Escapes(name)
            return self._bind_items(stmt, name, [(key, node.value)], dicts, dicts[name], set(), fresh=True)
        for name in dicts:
            if _mutates(stmt, name):
                raise _Escapes(name)
        new = stmt.visit(_ReadDicts(self.positions, dicts)) if set(names_used(stmt)) & set(dicts) else stmt
        for name in names_stored(stmt) & set(dicts):
            del dicts[name]
        return [new]

    def _bind_items(self, stmt, name, items, dicts, mapping, stored_anywhere, fresh=False) -> list:
        """Keys set to values: a constant or a name nothing rebinds stands for itself; any other
        value is bound once, to a name for the key, where the dict was built."""
        lines = []
        reader = _ReadDicts(self.positions, dicts)
        for key, value in items:
            value = value.visit(reader) if set(names_used(value)) & set(dicts) else value
            if not fresh and _simple(value) and not (set(names_used(value)) & stored_anywhere):
                mapping[key] = value
                continue
            var = self._fresh(name, key)
            lines.append(_assign(cst.Name(var), value, stmt, self.positions))
            mapping[key] = cst.Name(var)
        return lines

    def _unpack(self, stmt, name: str, keys: list[str], call: cst.Call, dicts) -> cst.BaseStatement:
        """`log.update(train_epoch(...))` -> `loss, acc = train_epoch(...)`."""
        if set(names_used(call)) & set(dicts):
            call = call.visit(_ReadDicts(self.positions, dicts))
        names = [self._fresh(name, key) for key in keys]
        for key, var in zip(keys, names):
            dicts[name][key] = cst.Name(var)
        target = (
            cst.Name(names[0])
            if len(names) == 1
            else cst.Tuple([cst.Element(cst.Name(n)) for n in names], lpar=[], rpar=[])
        )
        self.unpacked.add(id(call))
        method = next(meth for meth, fn in self.function_names.items() if fn == call.func.value)
        self.flattened.setdefault(method, keys)
        return _assign(target, call, stmt, self.positions)

    def _dict_call(self, expr) -> list[str] | None:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name):
            return self.dict_keys.get(expr.func.value)
        return None

    def _fresh(self, dict_name: str, key: str) -> str:
        if key.isidentifier() and not keyword.iskeyword(key) and key not in self.taken:
            self.taken.add(key)
            return key
        base = re.sub(r"\W", "_", f"{dict_name}_{key}")
        return unique_name(base, self.taken)

    def _check_unpacked(self, driver: list) -> None:
        for call in find(driver, cst.Call):
            if self._dict_call(call) is not None and id(call) not in self.unpacked:
                raise Unsupported("a returned dict is used as a whole")

    # --- state nothing reads ---------------------------------------------------------------
    def _drop_dead_state(self, driver: list, loop: cst.For) -> tuple[list, cst.For]:
        """The class's own state (`self.history = []`, appended to each epoch) that nothing reads
        once the class is gone: its statements go, with a finding."""
        drop: set[int] = set()
        lines = find(driver, cst.SimpleStatementLine)
        for attr, (name, init, value) in self.state.items():
            mutations = [
                line
                for line in lines
                if (mc := method_call(expr_statement(line))) is not None
                and dotted(mc[0]) == name
                and mc[1] in _MUTATORS
                and name not in names_used(list(expr_statement(line).args))
            ]
            ignored = {id(line) for line in mutations} | ({id(init)} if init is not None else set())
            rest = [line for line in lines if id(line) not in ignored]
            compound_reads = [
                n for stmt in driver if not isinstance(stmt, cst.SimpleStatementLine)
                for n in _header_names(stmt)
            ]
            if name in all_names(rest) or name in compound_reads:
                continue
            if init is not None and not _pure(value):
                continue
            if init is None and not mutations:
                continue
            drop |= ignored
            where = mutations[0] if mutations else init
            self._add(where, "MIG151", f"self.{attr} dropped: nothing reads it after {self.use.method}()")
        if not drop:
            return driver, loop
        rebuilt: dict[int, cst.CSTNode] = {}
        driver = _without(driver, drop, rebuilt, self.positions)
        return driver, rebuilt.get(id(loop), loop)

    def _class_used(self, driver: list) -> bool:
        """Whether anything but the replaced construction still names the class."""
        rest = [s for s in self.module.body if s is not self.trainer.node and s is not self.holder]
        if self.kind == "module":
            rest = [s for s in driver if s is not self.trainer.node]
        else:
            rest += driver
        return self.trainer.name in all_names([*rest, *self.functions.values()])


# --- small helpers ---------------------------------------------------------------------------
def _plain_method(fn: cst.FunctionDef) -> bool:
    params = fn.params
    return (
        not fn.decorators
        and fn.asynchronous is None
        and not params.posonly_params
        and bool(params.params)
        and params.params[0].name.value == SELF
        and not isinstance(params.star_arg, cst.Param)
        and params.star_kwarg is None
    )


def _unbound(fn: cst.FunctionDef) -> cst.FunctionDef:
    return fn.with_changes(params=fn.params.with_changes(params=fn.params.params[1:]))


def _docstring(stmt) -> bool:
    return m.matches(stmt, m.SimpleStatementLine(body=[m.Expr(m.SimpleString() | m.ConcatenatedString())]))


def _super_init(stmt) -> bool:
    return m.matches(
        expr_statement(stmt),
        m.Call(func=m.Attribute(value=m.Call(func=m.Name("super"), args=[]), attr=m.Name("__init__")), args=[]),
    )


def _call_of(stmt) -> tuple[cst.Call | None, cst.BaseAssignTargetExpression | None]:
    expr = expr_statement(stmt)
    if isinstance(expr, cst.Call):
        return expr, None
    node = small(stmt)
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call):
        return node.value, node.targets[0].target
    return None, None


def _self_attr(target: cst.CSTNode) -> str | None:
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == SELF:
        return target.attr.value
    return None


def _stored_targets(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Assignment targets (unpacked), augmented-assignment targets, loop targets."""
    out: list[cst.CSTNode] = []

    def unpack(target):
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                unpack(element.value)
        elif isinstance(target, cst.StarredElement):
            unpack(target.value)
        else:
            out.append(target)

    for sub in walk(node):
        if isinstance(sub, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For)):
            unpack(sub.target)
        elif isinstance(sub, cst.Del):
            unpack(sub.target)
    return out


def _strip_device(expr: cst.BaseExpression) -> cst.BaseExpression:
    while (mc := method_call(expr)) and mc[1] in ("to", "cuda", "cpu"):
        expr = mc[0]
    return expr


def _simple(expr: cst.BaseExpression) -> bool:
    """Evaluating it twice gives the same value, with no effect: names, constants, `args.x`."""
    if isinstance(expr, (cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString)):
        return True
    if isinstance(expr, cst.Attribute):
        return _simple(expr.value)
    if isinstance(expr, cst.UnaryOperation):
        return _simple(expr.expression)
    if isinstance(expr, cst.BinaryOperation):
        return _simple(expr.left) and _simple(expr.right)
    return False


def _pure(expr: cst.BaseExpression | None) -> bool:
    """Building it has no effect anyone could see: `[]`, `{}`, `0`, `float("inf")`, a name."""
    if expr is None or _simple(expr):
        return True
    if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
        return all(_pure(el.value) for el in expr.elements)
    if isinstance(expr, cst.Dict):
        return all(isinstance(el, cst.DictElement) and _pure(el.key) and _pure(el.value) for el in expr.elements)
    if isinstance(expr, cst.Call) and call_name(expr) in _BUILT_EMPTY:
        return all(_pure(arg.value) and not arg.star for arg in expr.args)
    return False


def _key(subscript: cst.Subscript) -> str | None:
    if len(subscript.slice) != 1 or not isinstance(subscript.slice[0].slice, cst.Index):
        return None
    value = subscript.slice[0].slice.value
    if isinstance(value, cst.SimpleString) and isinstance(value.evaluated_value, str):
        return value.evaluated_value
    return None


def _dict_items(expr: cst.BaseExpression | None) -> list[tuple[str, cst.BaseExpression]] | None:
    """`{"loss": a, "acc": b}` or `dict(loss=a, acc=b)`: [(key, value)]; None for anything else."""
    if isinstance(expr, cst.Dict):
        items = []
        for element in expr.elements:
            if not isinstance(element, cst.DictElement):
                return None
            key = element.key
            if not (isinstance(key, cst.SimpleString) and isinstance(key.evaluated_value, str)):
                return None
            items.append((key.evaluated_value, element.value))
        keys = [key for key, _ in items]
        return items if len(set(keys)) == len(keys) else None
    if call_name(expr) == "dict" and all(a.keyword is not None and not a.star for a in expr.args):
        return [(a.keyword.value, a.value) for a in expr.args]
    return None


def _display(mapping: dict[str, cst.BaseExpression]) -> cst.Dict:
    return cst.Dict(
        [cst.DictElement(cst.SimpleString(json.dumps(key)), value.deep_clone()) for key, value in mapping.items()]
    )


def _mutates(stmt: cst.CSTNode, name: str) -> bool:
    """`name.update(...)`, `name[k] = v`, `del name[k]`... anywhere in `stmt`."""
    for node in walk(stmt):
        if isinstance(node, cst.Call):
            mc = method_call(node)
            if mc and dotted(mc[0]) == name and mc[1] in _DICT_MUTATORS:
                return True
    for target in _stored_targets(stmt):
        if isinstance(target, (cst.Subscript, cst.Attribute)) and dotted(target.value) == name:
            return True
    return False


def _assign(target, value, origin: cst.CSTNode, positions: Positions) -> cst.SimpleStatementLine:
    assign = cst.Assign(targets=[cst.AssignTarget(target)], value=value)
    line = cst.SimpleStatementLine([assign])
    positions.alias(line, origin)
    positions.alias(assign, small(origin) or origin)
    return line


def _header_names(stmt: cst.CSTNode) -> list[str]:
    """Names a compound statement reads outside its simple statement lines (tests, iterables)."""
    names: list[str] = []
    for node in walk(stmt):
        if isinstance(node, (cst.If, cst.While)):
            names += names_used(node.test)
        elif isinstance(node, cst.For):
            names += names_used(node.iter)
        elif isinstance(node, cst.With):
            names += names_used(list(node.items))
    return names


def _without(stmts: list, drop: set[int], rebuilt: dict[int, cst.CSTNode], positions: Positions) -> list:
    """`stmts` without the statements whose ids are in `drop`, at any depth; `rebuilt` maps the
    id of each compound statement rebuilt to its new node."""
    out = []
    for stmt in stmts:
        if id(stmt) in drop:
            continue
        body = getattr(stmt, "body", None)
        if isinstance(body, cst.IndentedBlock):
            inner = _without(list(body.body), drop, rebuilt, positions)
            if len(inner) != len(body.body) or any(a is not b for a, b in zip(inner, body.body)):
                new = stmt.with_changes(body=body.with_changes(body=inner or [cst.SimpleStatementLine([cst.Pass()])]))
                positions.alias(new, stmt)
                rebuilt[id(stmt)] = new
                stmt = new
        out.append(stmt)
    return out
