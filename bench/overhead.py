"""Per-step overhead of `runtime.Trainer.fit` against the equivalent hand-written loop.

Also times real `lightning.pytorch` when it is importable, and the cost of `import runtime`.

Why it is built this way
------------------------
* Interleaved rounds in one process. Each round runs every implementation once (hand,
  runtime, lightning), rotating their order from round to round, so drift on a noisy
  machine (frequency scaling, neighbours, allocator state) hits all of them alike. One
  untimed warm-up round comes first (CUDA/cuDNN init, lazy imports, first-call caches).
* Identical work. Per run: the same seeded initialisation and data, a DataLoader built the
  same way and shuffled from the same seeded global RNG, the same number of optimizer steps,
  the same `torch.set_num_threads` (1 on CPU by default: the overhead is single-threaded
  Python, and on a shared machine intra-op threads made runs up to 10x slower at random).
  After the warm-up round each implementation's trained parameters are compared with the
  hand loop's: 0 on CPU in fp32 shows the same steps were taken over the same batches.
* Real defaults on the framework side: progress bar, CSV logger (passed explicitly to both
  frameworks, since Lightning's default becomes TensorBoard when tensorboard is installed)
  and `self.log("train_loss", loss, prog_bar=True)` every step; checkpointing and the model
  summary are off. The hand loop does only zero_grad / forward / loss / backward / step (with
  the same autocast for mixed precision). Lightning's own parity test turns the bar, logger
  and checkpointing off; here they stay on, so the overhead reported is an upper bound of
  what that test measures.
* Two timings per run:
  - "fit": the whole call, from building the logger and `Trainer(...)` through `fit(...)`
    returning (setup and teardown included), divided by all steps. Lightning's parity test
    times the same span. For the hand loop: moving the model, building the optimizer, the loop.
  - "steady": epochs 2..N only, divided by their steps. A callback reads the clock at
    `on_train_epoch_start` of the second epoch and at `on_train_end` (it is registered before
    the progress bar, so the bar's epoch reset is inside the window and its closing is not);
    the hand loop reads the clock at the same two points. This excludes one-off setup
    without a second, shorter run whose own noise would be subtracted in, and still includes
    the per-epoch work (bar reset, epoch metric reduction, logger rows). The callback adds
    two hook calls per epoch and nothing per step.
* Ratios are the median over rounds of the within-round ratio (impl / hand), which pairs
  runs taken moments apart; the times shown are the median (and min) over rounds.
* Output of the timed runs goes to os.devnull at the file-descriptor level (tqdm, logging
  handlers bound to the original streams, warnings), the same way for every implementation.
* On CUDA the clock is read only after `torch.cuda.synchronize()`.

Run: `python bench/overhead.py` (see --help). Exits 0 whatever the verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
# `python bench/overhead.py` puts bench/ first on sys.path; the runtime under test is this checkout's.
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
import runtime.loggers  # noqa: E402

try:
    import lightning.pytorch as lightning_pl
    import lightning.pytorch.loggers as lightning_loggers
except ImportError:
    lightning_pl = None
    lightning_loggers = None

RATIO_TARGET = 1.05
LSTM_ALLOWANCE_S = 0.05  # Lightning's tests/parity_pytorch: s/epoch over vanilla PyTorch for ParityModuleRNN
IMPORT_TARGET_S = 0.3
SEED = 0


# --- workloads ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str
    batch_size: int
    default_steps_per_epoch: int
    shuffle: bool
    make_data: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    make_net: Callable[[], nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _classification_data(shape: tuple[int, ...]) -> Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    def make(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, *shape, generator=generator), torch.randint(0, 10, (n,), generator=generator)

    return make


def _average_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Lightning's `AverageDataset` (tests_pytorch/helpers/datasets.py): 10 features, sequences of 100."""
    inputs = torch.randn(n, 100, 10, generator=generator)
    top, bottom = inputs.chunk(2, -1)
    return inputs, top + bottom.roll(shifts=1, dims=-1)


class _ParityRNN(nn.Module):
    """Lightning's `ParityModuleRNN` network: LSTM(10->20, batch_first) then Linear(20->5) on every step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(10, 20, batch_first=True)
        self.linear_out = nn.Linear(20, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.rnn(x)
        return self.linear_out(seq)


def _sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


WORKLOADS: dict[str, Workload] = {
    "mlp": Workload(
        "mlp", 64, 50, True, _classification_data((32,)),
        lambda: nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)),
        F.cross_entropy, _sgd,
    ),
    "cnn": Workload(
        "cnn", 64, 32, True, _classification_data((1, 28, 28)),
        lambda: nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
        ),
        F.cross_entropy, _sgd,
    ),
    # Lightning's parity workload: batch 30 over 300 sequences, Adam(lr=0.02), MSE, no shuffling.
    "lstm": Workload(
        "lstm", 30, 10, False, _average_data, _ParityRNN, F.mse_loss,
        lambda params: torch.optim.Adam(params, lr=0.02),
    ),
}


# --- one run of each implementation ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    workload: Workload
    dataset: TensorDataset
    epochs: int
    steps_per_epoch: int
    device: torch.device
    precision: str

    def seeded_net_and_loader(self) -> tuple[nn.Module, DataLoader]:
        """Seeds the global RNG, which initialises the net and then draws each epoch's shuffle.

        No generator is given to the DataLoader: with its own generator the shuffles after the first
        epoch would depend on whether the loop exhausts the sampler (a plain `for` does, the Trainers
        stop after len(loader) batches), and a sampler with no generator seeds itself from the global
        RNG, which every loop here draws from alike.
        """
        torch.manual_seed(SEED)
        net = self.workload.make_net()
        return net, DataLoader(self.dataset, batch_size=self.workload.batch_size, shuffle=self.workload.shuffle)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass(frozen=True)
class RunResult:
    fit_s: float
    steady_s: float
    net: nn.Module


def run_hand(config: RunConfig) -> RunResult:
    """The loop a user would write: the essentials only, no logging."""
    net, loader = config.seeded_net_and_loader()
    device, loss_fn = config.device, config.workload.loss_fn
    autocast = config.precision == "bf16-mixed"
    start = time.perf_counter()
    net.to(device)
    optimizer = config.workload.make_optimizer(net.parameters())
    net.train()
    steady_start = start
    for epoch in range(config.epochs):
        if epoch == 1:
            config.sync()
            steady_start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
    config.sync()
    end = time.perf_counter()
    return RunResult(end - start, end - steady_start, net)


@dataclass(frozen=True)
class Framework:
    """A Lightning-API package under test: its Trainer, CSVLogger and the bench's module and clock classes."""

    name: str
    trainer_cls: type
    csv_logger_cls: type
    module_cls: type
    clock_cls: type


def make_framework(name: str, package: Any, loggers: Any) -> Framework:
    """The bench's LightningModule and clock callback, subclassed from `package`'s own base classes."""
    class BenchModule(package.LightningModule):
        def __init__(self, net: nn.Module, workload: Workload) -> None:
            super().__init__()
            self.net = net
            self.workload = workload

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = self.workload.loss_fn(self.net(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return self.workload.make_optimizer(self.net.parameters())

    class EpochClock(package.Callback):
        def __init__(self, sync: Callable[[], None]) -> None:
            self.sync = sync
            self.steady_start = math.nan
            self.end = math.nan

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == 1:
                self.sync()
                self.steady_start = time.perf_counter()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.sync()
            self.end = time.perf_counter()

    return Framework(name, package.Trainer, loggers.CSVLogger, BenchModule, EpochClock)


def run_framework(framework: Framework, config: RunConfig) -> RunResult:
    net, loader = config.seeded_net_and_loader()
    module = framework.module_cls(net, config.workload)
    clock = framework.clock_cls(config.sync)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as root:
        start = time.perf_counter()
        trainer = framework.trainer_cls(
            max_epochs=config.epochs,
            accelerator=config.device.type,
            devices=1,
            precision=config.precision,
            default_root_dir=root,
            logger=framework.csv_logger_cls(save_dir=root),
            callbacks=[clock],
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(module, loader)
        config.sync()
        end = time.perf_counter()
    return RunResult(end - start, clock.end - clock.steady_start, net)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at os.devnull, so that everything written by the run is discarded."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# --- measuring a workload -------------------------------------------------------------------------------
@dataclass
class Samples:
    fit_s: list[float] = field(default_factory=list)
    steady_s: list[float] = field(default_factory=list)


@dataclass
class WorkloadResult:
    workload: str
    device: str
    precision: str
    epochs: int
    steps_per_epoch: int
    samples: dict[str, Samples]
    max_param_diff_vs_hand: dict[str, float]

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def per_step_ms(self, impl: str, timing: str) -> list[float]:
        steps = self.steps if timing == "fit" else self.steps - self.steps_per_epoch
        return [1e3 * s / steps for s in getattr(self.samples[impl], f"{timing}_s")]

    def ratio(self, impl: str, timing: str) -> float:
        """Median over rounds of impl/hand within the round."""
        return statistics.median(a / b for a, b in zip(self.per_step_ms(impl, timing),
                                                        self.per_step_ms("hand", timing)))

    def epoch_overhead_s(self, impl: str) -> float:
        """Median over rounds of (impl - hand) whole-run seconds per epoch, as Lightning's parity test counts it."""
        pairs = zip(self.samples[impl].fit_s, self.samples["hand"].fit_s)
        return statistics.median((a - b) / self.epochs for a, b in pairs)


def measure_workload(workload: Workload, frameworks: list[Framework], device: torch.device, precision: str,
                     epochs: int, steps_per_epoch: int, rounds: int, threads: int) -> WorkloadResult:
    x, y = workload.make_data(steps_per_epoch * workload.batch_size, torch.Generator().manual_seed(SEED))
    config = RunConfig(workload, TensorDataset(x, y), epochs, steps_per_epoch, device, precision)
    runners: dict[str, Callable[[], RunResult]] = {"hand": lambda: run_hand(config)}
    for framework in frameworks:
        runners[framework.name] = lambda framework=framework: run_framework(framework, config)
    names = list(runners)
    samples = {name: Samples() for name in names}
    warmup_nets: dict[str, nn.Module] = {}
    for round_idx in range(rounds + 1):  # round 0 is the untimed warm-up
        shift = round_idx % len(names)
        for name in names[shift:] + names[:shift]:
            torch.set_num_threads(threads)
            gc.collect()
            with silenced():
                result = runners[name]()
            if round_idx == 0:
                warmup_nets[name] = result.net
            else:
                samples[name].fit_s.append(result.fit_s)
                samples[name].steady_s.append(result.steady_s)
    return WorkloadResult(workload.name, str(device), precision, epochs, steps_per_epoch, samples,
                          {name: _max_param_diff(warmup_nets[name], warmup_nets["hand"]) for name in names[1:]})


def _max_param_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p.detach().float().cpu() - q.detach().float().cpu()).abs().max().item()
               for p, q in zip(a.parameters(), b.parameters()))


# --- import time ----------------------------------------------------------------------------------------
_TIME_RUNTIME_IMPORT = (
    "import time; import torch; start = time.perf_counter(); import runtime; print(time.perf_counter() - start)"
)


@dataclass
class ImportResult:
    torch_s: list[float]
    torch_and_runtime_s: list[float]
    runtime_in_process_s: list[float]

    @property
    def wall_overhead_s(self) -> float:
        return statistics.median(self.torch_and_runtime_s) - statistics.median(self.torch_s)

    @property
    def overhead_s(self) -> float:
        """What the target judges: the in-process time, since two start-ups of torch vary by more than 0.3 s."""
        return statistics.median(self.runtime_in_process_s)


def measure_import(runs: int) -> ImportResult:
    """Fresh interpreters, alternating `import torch` and `import torch, runtime`, after one untimed pair.

    The second one also times `import runtime` from inside, after torch: the same quantity without the
    noise of two interpreter start-ups and two torch imports (on a shared 2-core machine the wall-time
    difference of the medians moved between -0.01 s and +0.5 s from one run to the next, while the
    in-process time stayed near 0.1 s).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}

    def timed(code: str) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True,
                              text=True)
        return time.perf_counter() - start, done.stdout

    result = ImportResult([], [], [])
    for run_idx in range(runs + 1):
        torch_s, _ = timed("import torch")
        both_s, inside = timed(_TIME_RUNTIME_IMPORT)
        if run_idx:
            result.torch_s.append(torch_s)
            result.torch_and_runtime_s.append(both_s)
            result.runtime_in_process_s.append(float(inside))
    return result


# --- report ---------------------------------------------------------------------------------------------
def ratio_target(workload: str, device: str) -> float | None:
    """runtime/hand targets: MLP on CPU; MLP and the bf16-mixed CNN on GPU."""
    if device.startswith("cuda"):
        return RATIO_TARGET if workload in ("mlp", "cnn") else None
    return RATIO_TARGET if workload == "mlp" else None


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f})"


def print_report(results: list[WorkloadResult], imports: ImportResult | None, impls: list[str]) -> dict[str, str]:
    """Print the tables; return the verdict of every target, keyed by what it judges."""
    verdicts: dict[str, str] = {}
    header = ["workload", "device", "precision", "timing", "hand ms/step", "runtime ms/step", "ratio"]
    if "lightning" in impls:
        header += ["lightning ms/step", "ratio"]
    header += ["target", "verdict"]
    rows = [header]
    for res in results:
        target = ratio_target(res.workload, res.device)
        for timing in ("fit", "steady"):
            ratio = res.ratio("runtime", timing)
            row = [res.workload, res.device, res.precision, timing, _cell(res.per_step_ms("hand", timing)),
                   _cell(res.per_step_ms("runtime", timing)), f"{ratio:.2f}"]
            if "lightning" in impls:
                row += [_cell(res.per_step_ms("lightning", timing)), f"{res.ratio('lightning', timing):.2f}"]
            verdict = "-" if target is None else "PASS" if ratio <= target else "FAIL"
            if target is not None:
                verdicts[f"{res.workload}/{res.device}/{timing} runtime/hand <= {target}"] = verdict
            rows.append(row + ["-" if target is None else f"<={target:.2f}", verdict])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print("\nms/step: median (min) over rounds; ratio: median over rounds of the within-round ratio to hand")
    print("fit = Trainer(...) + fit(...) incl. setup, over all steps; steady = epochs 2..N only")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    for res in results:
        diffs = ", ".join(f"{name} {diff:.2g}" for name, diff in res.max_param_diff_vs_hand.items())
        print(f"\n{res.workload}: {res.epochs} epochs x {res.steps_per_epoch} steps; "
              f"max |param - hand param| after the warm-up run: {diffs}")
        if res.workload == "lstm":
            for impl in impls[1:]:
                overhead = res.epoch_overhead_s(impl)
                verdict = "PASS" if overhead <= LSTM_ALLOWANCE_S else "FAIL"
                print(f"  {impl} - hand: {overhead:+.4f} s/epoch (whole fit / epochs); Lightning's allowance "
                      f"{LSTM_ALLOWANCE_S} s/epoch (bar, logger, checkpointing off there, on here): {verdict}")
                if impl == "runtime":
                    verdicts[f"lstm/{res.device} runtime-hand <= {LSTM_ALLOWANCE_S} s/epoch"] = verdict

    if imports is not None:
        overhead = imports.overhead_s
        verdict = "PASS" if overhead <= IMPORT_TARGET_S else "FAIL"
        verdicts[f"import runtime over torch <= {IMPORT_TARGET_S} s"] = verdict
        print(f"\nimport runtime after torch: {overhead:.3f} s (median in-process, {len(imports.torch_s)} fresh "
              f"interpreters), target <= {IMPORT_TARGET_S} s: {verdict}; wall time of `import torch` "
              f"{statistics.median(imports.torch_s):.3f} s vs `import torch, runtime` "
              f"{statistics.median(imports.torch_and_runtime_s):.3f} s (medians): {imports.wall_overhead_s:+.3f} s")

    print("\ntargets:" if verdicts else "\ntargets: none for these workloads on this device")
    for what, verdict in verdicts.items():
        print(f"  {verdict}  {what}")
    return verdicts


# --- command line ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="default: cuda when available")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default=None,
                        help="precision of the CNN (MLP and LSTM stay 32-true); default: bf16-mixed on cuda, "
                             "32-true on cpu")
    parser.add_argument("--workloads", default="mlp,cnn,lstm", help="comma-separated subset of mlp,cnn,lstm (default: all)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, after one warm-up round (default: 7)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run, >= 2 for the steady timing (default: 4, as Lightning's parity test)")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="optimizer steps per epoch (dataset = steps x batch); default: mlp 50, cnn 32, "
                             "lstm 10 (Lightning's 300 sequences at batch 30)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for every run; default: 1 on cpu (the overhead measured is "
                             "single-threaded Python, and on a shared machine intra-op threads waiting on each "
                             "other made runs up to 10x slower at random), torch's default on cuda")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh interpreters per import timing, 0 skips (default: 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {sorted(WORKLOADS)}")
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs must be >= 2 and --rounds >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "cuda" or args.device == "auto" and torch.cuda.is_available()
                          else "cpu")
    threads = args.threads or (torch.get_num_threads() if device.type == "cuda" else 1)
    frameworks = [make_framework("runtime", runtime, runtime.loggers)]
    if lightning_pl is not None:
        frameworks.append(make_framework("lightning", lightning_pl, lightning_loggers))
    impls = ["hand"] + [f.name for f in frameworks]
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", {threads} threads; lightning "
          + (lightning_pl.__version__ if lightning_pl is not None else "not importable (runtime vs hand only)")
          + f"; {args.rounds} rounds + 1 warm-up, {args.epochs} epochs per run")

    results = []
    for name in args.workloads:
        workload = WORKLOADS[name]
        precision = "32-true"
        if name == "cnn":
            precision = args.precision or ("bf16-mixed" if device.type == "cuda" else "32-true")
        start = time.perf_counter()
        results.append(measure_workload(workload, frameworks, device, precision, args.epochs,
                                        args.steps_per_epoch or workload.default_steps_per_epoch,
                                        args.rounds, threads))
        print(f"  {name}: measured in {time.perf_counter() - start:.1f} s", flush=True)
    imports = measure_import(args.import_runs) if args.import_runs > 0 else None

    verdicts = print_report(results, imports, impls)
    if args.json is not None:
        payload = {
            "torch": torch.__version__,
            "lightning": lightning_pl.__version__ if lightning_pl is not None else None,
            "threads": threads,
            "rounds": args.rounds,
            "workloads": [
                {**dataclasses.asdict(res),
                 "ms_per_step": {timing: {impl: res.per_step_ms(impl, timing) for impl in impls}
                                 for timing in ("fit", "steady")},
                 "ratio_to_hand": {timing: {impl: res.ratio(impl, timing) for impl in impls[1:]}
                                   for timing in ("fit", "steady")},
                 "epoch_overhead_s": {impl: res.epoch_overhead_s(impl) for impl in impls[1:]}}
                for res in results
            ],
            "import": None if imports is None else {**dataclasses.asdict(imports), "overhead_s": imports.overhead_s,
                                                   "wall_overhead_s": imports.wall_overhead_s},
            "verdicts": verdicts,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
