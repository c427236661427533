"""The LightningDataModule: one *_dataloader method per role, with the user's DataLoader arguments."""

from __future__ import annotations

import libcst as cst

from migrate.analysis.nodes import call_name, code, dotted, find, names_used
from migrate.analysis.plan import ScriptPlan
from migrate.rewrite.module import indent
from migrate.rewrite.names import ModuleNames, Parameters
from migrate.substitution import substitute

_METHOD = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader"}


def loader_roles(plan: ScriptPlan) -> dict[str, cst.BaseExpression]:
    roles: dict[str, cst.BaseExpression] = {}
    for step in plan.steps:
        roles.setdefault(step.stage, step.loader)
    for step in plan.after_loop_tests.values():
        roles.setdefault("test", step.loader)
    return roles


# Calls a DataLoader's arguments may make and still move into a *_dataloader method: they draw
# no random numbers, so building them later leaves the script's random stream as it was.
_PURE_CALLS = {
    "TensorDataset", "torch.utils.data.TensorDataset", "data.TensorDataset", "Subset", "ConcatDataset",
    "len", "int", "min", "max", "bool", "str", "float",
}


def _builds_nothing_random(loader: cst.Call) -> bool:
    """`DataLoader(make_split(1280), ...)` must stay where it was: the dataset it builds there
    consumes random numbers before the model is created."""
    return all(call_name(call) in _PURE_CALLS for arg in loader.args for call in find(arg.value, cst.Call))


def build_datamodule(plan: ScriptPlan, prefix: str) -> tuple[str, Parameters, set[str]]:
    """(class source, constructor parameters, the loader names moved into it)."""
    params = Parameters()
    names = ModuleNames(plan, hparams=False, params=params)
    methods = []
    moved: set[str] = set()
    for role, loader in loader_roles(plan).items():
        name = dotted(loader)
        binding = plan.bindings.get(name or "")
        value = binding.value if binding is not None else None
        if (
            binding is not None
            and isinstance(value, cst.Call)
            and (call_name(value) or "").endswith("DataLoader")
            and _builds_nothing_random(value)
        ):
            mapping = names.mapping(names_used(value), set())
            expr = substitute(value, mapping, names.attribute)
            moved.add(name)
        else:
            params.objects.setdefault(name or f"{role}_loader", loader)
            expr = cst.parse_expression(f"self.{name or role + '_loader'}")
        methods.append(f"def {_METHOD[role]}(self):\n    return {code(expr)}\n")
    init = ["super().__init__()\n"] + [f"self.{n} = {n}\n" for n in params.names()]
    signature = ", ".join(["self", *params.names()])
    body = f"def __init__({signature}):\n" + indent("".join(init), 1) + "\n" + "\n".join(methods)
    return f"class {prefix}DataModule(LightningDataModule):\n" + indent(body, 1), params, moved
