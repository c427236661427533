"""The ScriptPlan: what analysis found, as plain dataclasses holding (unmodified) libcst nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst


@dataclass
class Span:
    line: int
    col: int
    end_line: int


@dataclass
class Accumulator:
    """`name = 0` (or `[]`) then `name += value` / `name.append(value)` once per batch."""

    name: str
    kind: str = "sum"  # "sum" (+=), "list" (.append) or "meter" (an AverageMeter's .update)
    final: str | None = (
        None  # None: the raw total; "dataset": / number of samples; "batches": / number of batches
    )
    alias: str | None = None  # the name the caller gave the returned value
    label: str | None = None  # the label it was printed under
    is_count: bool = False  # `total += y.size(0)`: a sample count used as a divisor, not a metric
    # `100 * correct / total` printed: the constant factor (`100`) the logged mean is scaled by
    scale: cst.BaseExpression | None = None
    floored: bool = False  # printed as `correct // total`: the logged mean is the exact ratio
    prog_bar: bool = False  # shown on a tqdm bar's postfix
    weighted: bool = False  # `total += n * value`: a mean weighted by n, whatever the final divisor


@dataclass
class LogItem:
    """A `self.log` call that replaces an accumulation, a print or a periodic print in a step."""

    value: cst.BaseExpression  # the per-batch value (step-local names, before substitution)
    name: str = ""  # set by `final_name` once the whole script is analysed
    accumulator: Accumulator | None = None
    label_hint: str | None = None
    prog_bar: bool = False
    batch_len: cst.BaseExpression | None = None  # the batch's sample count, for weighted means
    unscaled: cst.BaseExpression | None = None  # `A` when value is `A * <batch count>`

    def final_name(self) -> str:
        if self.name:
            return self.name
        acc = self.accumulator
        if acc is not None:
            if acc.final is not None and acc.label:
                return acc.label
            return acc.alias or acc.name
        return self.label_hint or "loss"


@dataclass
class EpochStatement:
    """A once-per-epoch statement kept in the epoch-end hook of `stage` ("train" or "val").

    `metrics` maps the names it reads that held an evaluation's result to their accumulators:
    the hook reads them back from `trainer.callback_metrics`. `state` lists the driver names it
    updates (a best score, a history list): they live on the LightningModule as `self.<name>`,
    set up in `__init__` from `initial`, so code after `fit` can read them from the module.
    """

    statement: cst.BaseStatement
    stage: str
    subst: dict[str, cst.BaseExpression] = field(default_factory=dict)
    metrics: dict[str, Accumulator] = field(default_factory=dict)
    state: list[str] = field(default_factory=list)
    # (metric name, name the statement binds): logged with self.log after it, in the hook
    logs: list[tuple[str, str]] = field(default_factory=list)
    # once per training epoch, never in the sanity check (an lr change, an early `break`)
    per_epoch: bool = False


@dataclass
class ManualOptimization:
    """Several optimizers stepped in one train loop: training_step keeps the user's
    `zero_grad`/`backward`/`step` calls (`backward` through `self.manual_backward`) with
    `automatic_optimization = False`, so the updates run in the original's order."""

    optimizers: list[str]  # driver names, in the order the loop first steps them
    handles: dict[str, str]  # driver name -> the name the loop body calls it by
    # the loop's optimization calls in order: ("zero_grad" | "step", optimizer) or ("backward", loss)
    sequence: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StepPlan:
    """One loop over a DataLoader: becomes training_step, validation_step or test_step."""

    stage: str  # "train", "val" or "test"
    loader: cst.BaseExpression  # the loader, in the driver's names
    target: (
        cst.BaseAssignTargetExpression
    )  # the per-batch loop target (without the enumerate index)
    index_name: str | None
    index_start: cst.BaseExpression | None
    items: list[cst.BaseStatement | LogItem]  # the step body in order
    subst: dict[str, cst.BaseExpression]  # function parameter -> the caller's argument expression
    loss_name: str | None
    span: Span
    origin: str  # "train_loop()" or "inline"
    reviews: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    step_schedulers: list[str] = field(default_factory=list)
    log_every: cst.BaseExpression | None = None
    limit_batches: cst.BaseExpression | None = None
    called_eval: bool = False
    function: str | None = None
    manual: ManualOptimization | None = None
    # state carried from batch to batch (an RNN's hidden state): (attribute, its per-epoch start value)
    carried: list[tuple[str, cst.BaseExpression]] = field(default_factory=list)


@dataclass
class Binding:
    """`name = value` in the driver (or at module level)."""

    name: str
    value: cst.BaseExpression | None  # None: bound by unpacking or another form
    statement: cst.BaseStatement
    index: int  # position in the driver body; -1 for module level when the driver is a function


@dataclass
class OptimizerPlan:
    name: str
    expr: cst.Call
    subst: dict[str, cst.BaseExpression]
    per_call: bool = False  # created inside a function called every epoch
    model: str | None = None  # the network whose parameters it trains


@dataclass
class SchedulerPlan:
    name: str
    expr: cst.Call
    interval: str = "epoch"
    monitor: str | None = None
    monitor_metric: Accumulator | None = None  # `scheduler.step(val_loss)`: the metric val_loss holds


@dataclass
class StoppingPlan:
    """A hand-written patience counter and/or best-weights save on an epoch metric:
    `EarlyStopping` and `ModelCheckpoint` callbacks instead (see analysis/stopping.py)."""

    metric: Accumulator  # the monitored metric (logged by a step)
    mode: str  # "min" or "max"
    best: str  # the driver name holding the best value so far
    min_delta: cst.BaseExpression | None = None
    counter: str | None = None  # the driver name counting epochs without improvement
    patience: cst.BaseExpression | None = None
    save_path: cst.BaseExpression | None = None  # `torch.save(model.state_dict(), path)` on improvement
    checkpoint_dir: str | None = None  # dirpath/filename for ModelCheckpoint when the path is a literal
    checkpoint_name: str | None = None
    path_name: str | None = None  # the driver name bound to the literal path
    statements: list[cst.BaseStatement] = field(default_factory=list)  # the epoch-loop statements replaced
    reload: cst.BaseStatement | None = None  # `model.load_state_dict(torch.load(path))` after the loop


@dataclass
class Attribute:
    """A module the steps use besides the network (typically the loss): self.<name>."""

    name: str
    expr: cst.BaseExpression | None  # construction, moved into __init__; None: passed in
    subst: dict[str, cst.BaseExpression] = field(default_factory=dict)


@dataclass
class ScriptPlan:
    path: str
    driver_kind: str  # "module", "function" or "main_guard"
    driver_function: str | None
    driver_body: list[cst.BaseStatement]
    epoch_loop: cst.For
    epoch_var: str | None
    epochs: cst.BaseExpression
    epoch_start: cst.BaseExpression | None
    model_name: str
    model_class: str | None
    bindings: dict[str, Binding]
    module_names: set[str]
    args_name: str | None
    steps: list[StepPlan]
    after_loop_tests: dict[int, StepPlan]  # driver statement index -> test step run there
    optimizer: OptimizerPlan | None
    scheduler: SchedulerPlan | None
    attributes: dict[str, Attribute]
    accelerator: cst.BaseExpression | None
    epoch_reviews: list[cst.BaseStatement] = field(default_factory=list)
    epoch_statements: list[EpochStatement] = field(default_factory=list)
    epoch_metrics: dict[str, Accumulator] = field(default_factory=dict)  # epoch-loop name -> its metric
    stopping: StoppingPlan | None = None
    lr_monitor: bool = False  # an lr printed each epoch: LearningRateMonitor logs it
    removed_functions: set[str] = field(default_factory=set)
    findings: list = field(default_factory=list)
    trainer_args: dict[str, cst.BaseExpression] = field(default_factory=dict)  # beyond max_epochs/accelerator
    # Driver objects the Trainer replaces (GradScaler, SummaryWriter, step counters): dropped unless still read.
    replaced_names: set[str] = field(default_factory=set)
    dropped_statements: set[int] = field(default_factory=set)  # ids of driver statements that go (writer.close())
    reviewed_statements: dict[int, str] = field(default_factory=dict)  # id of a driver statement -> its review marker
    next_phase: Any = None  # phases.NextPhase: a second training phase folded into the fit
    # manual optimization: every optimizer (construction order) and the networks passed in
    manual: ManualOptimization | None = None
    optimizers: list[OptimizerPlan] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # the script as analysed, when that is not the input itself (a trainer class read as functions)
    module: cst.Module | None = None
