"""Renaming moved code: helper parameters -> the caller's expressions, and the driver's names ->
what the generated class holds (`self.model`, `self.hparams.lr`, `self.current_epoch`, ...)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import libcst as cst

from migrate.analysis.nodes import dotted


_BUILTINS = set(dir(builtins))


def is_plain(
    expr: cst.BaseExpression | None, bindings, args_name: str | None, depth: int = 0
) -> bool:
    """A value safe to keep as a hyperparameter: literals, arithmetic on them, argparse values."""
    if expr is None or depth > 5:
        return False
    if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(expr, cst.Name):
        if expr.value in ("True", "False", "None"):
            return True
        binding = bindings.get(expr.value)
        return binding is not None and is_plain(binding.value, bindings, args_name, depth + 1)
    if isinstance(expr, cst.UnaryOperation):
        return is_plain(expr.expression, bindings, args_name, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        return is_plain(expr.left, bindings, args_name, depth + 1) and is_plain(
            expr.right, bindings, args_name, depth + 1
        )
    if isinstance(expr, cst.Attribute) and args_name and dotted(expr.value) == args_name:
        return True
    return False


@dataclass
class Parameters:
    """The generated class's constructor: name -> the driver expression passed for it."""

    plain: dict[str, cst.BaseExpression] = field(default_factory=dict)
    objects: dict[str, cst.BaseExpression] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [*self.objects, *self.plain]


class ModuleNames:
    """Maps the driver's free names to what a LightningModule (or DataModule) method can see."""

    def __init__(
        self, plan, *, hparams: bool, params: Parameters | None = None, fixed: dict | None = None
    ) -> None:
        self.plan = plan
        self.hparams = hparams
        self.params = params or Parameters()
        self.fixed = fixed or {}

    def _store(self, name: str) -> str:
        return f"self.hparams.{name}" if self.hparams else f"self.{name}"

    def attribute(self, base: str, attr: str) -> cst.BaseExpression | None:
        plan = self.plan
        if plan.args_name and base == plan.args_name and base not in self.fixed:
            self.params.plain.setdefault(attr, cst.parse_expression(f"{base}.{attr}"))
            return cst.parse_expression(self._store(attr))
        return None

    def mapping(self, free: list[str], local: set[str]) -> dict[str, cst.BaseExpression]:
        plan = self.plan
        out: dict[str, cst.BaseExpression] = {}
        for name in free:
            if name in local:
                continue
            if name in self.fixed:
                out[name] = self.fixed[name]
                continue
            if name == plan.args_name:
                continue  # `args.x` is mapped attribute by attribute
            if name in plan.module_names or (name in _BUILTINS and name not in plan.bindings):
                continue
            binding = plan.bindings.get(name)
            if binding is None:
                continue
            if binding.index == -1 and plan.driver_kind != "module":
                # a module-level global the driver function reads: still visible from the class
                if not is_plain(binding.value, plan.bindings, plan.args_name):
                    continue
            if is_plain(binding.value, plan.bindings, plan.args_name):
                self.params.plain.setdefault(name, cst.Name(name))
                out[name] = cst.parse_expression(self._store(name))
            else:
                self.params.objects.setdefault(name, cst.Name(name))
                out[name] = cst.parse_expression(f"self.{name}")
        return out
