"""How long `migrate convert` takes per file, against the floor of any libcst-based tool.

Usage: python bench/convert_speed.py [--repeats N]

The floor is a bare `libcst.parse_module(source).code` round-trip of the same file: no
converter built on libcst can be faster. Target: the whole conversion without black
(convert, the compile check and the idempotence re-conversion) within 3x the floor.

Why it is built this way
------------------------
* The inputs are the fixtures (`fixtures/*/original.py`, whichever exist) and a generated
  script of 1,000+ lines in the style of real ones: a Dataset, many nn.Module blocks and
  helpers, argparse, and a pytorch/examples-style train/test/main, so the converter's
  analysis sees realistic code and not a thousand copies of one line.
* Per file, four timings, each the median of `--repeats` runs after one warm-up run, with
  the order rotating from run to run so that drift on a noisy machine hits all alike:
  - floor:  `libcst.parse_module(source).code`;
  - core:   one `migrate.convert.convert_code` call (parse, analyse, rewrite, codegen);
  - engine: `migrate.engine.convert_source(..., format=False)`, what the user waits for
            without black: the core plus the checks on its output;
  - black:  `black.format_str` on the core's unformatted output, reported apart because
            it is a separate, optional stage (`--no-format`).
  "checks" is engine - core: what the engine adds (two compile() calls, and converting the
  output again, which for converted code should be little more than a parse).
* The ratios are engine / floor (the target) and core / floor, per file and over all files.
* A last section times a whole batch through `migrate.engine.convert_files` (black
  included) with one process and with one per core, which is what `-j` buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import black
import libcst

REPO = Path(__file__).resolve().parent.parent

TARGET_RATIO = 3.0
GENERATED_LINES = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args()
    try:
        from migrate.convert import convert_code
        from migrate.engine import convert_files, convert_source
    except ImportError as error:
        print(f"the converter is not available ({error}); nothing to measure")
        return 1

    with tempfile.TemporaryDirectory(prefix="convert-speed-") as scratch:
        generated = Path(scratch) / "generated.py"
        generated.write_text(generated_script(GENERATED_LINES))
        fixtures = sorted(REPO.glob("fixtures/*/original.py"))
        if not fixtures:
            print("no fixtures found (fixtures/*/original.py); timing the generated script only")
        files = [*fixtures, generated]
        print(
            f"{len(files)} files, median of {args.repeats} runs each, times in ms; "
            f"target: engine <= {TARGET_RATIO:g}x floor\n"
        )
        print(HEADER)
        print("-" * len(HEADER))
        totals = dict.fromkeys(("floor", "core", "engine", "black"), 0.0)
        ratios = []
        for path in files:
            source = path.read_text()
            timings = time_file(source, str(path), convert_code, convert_source, args.repeats)
            for name, seconds in timings.items():
                totals[name] += seconds
            ratios.append(timings["engine"] / timings["floor"])
            label = path.name if path == generated else path.parent.name
            print(row(label, str(len(source.splitlines())), timings))
        print("-" * len(HEADER))
        print(row("all files", "", totals))
        overall = totals["engine"] / totals["floor"]
        worst = max(ratios)
        within = sum(ratio <= TARGET_RATIO for ratio in ratios)
        print(
            f"\nengine / floor: {overall:.2f}x over all files "
            f"(target {TARGET_RATIO:g}x {'met' if overall <= TARGET_RATIO else 'NOT met'}); per file: median "
            f"{statistics.median(ratios):.2f}x, worst {worst:.2f}x, {within} of {len(ratios)} files within "
            f"{TARGET_RATIO:g}x"
        )
        print(
            f"black, when on, adds {totals['black'] * 1000:.1f} ms "
            f"({totals['black'] / totals['engine']:.2f}x the engine's time)"
        )
        print_batch(files, convert_files)
    return 0


HEADER = (
    f"{'file':<36} {'lines':>5} {'floor':>8} {'core':>8} {'checks':>8} {'engine':>8} "
    f"{'x floor':>8} {'core x':>7} {'black':>8}"
)


def time_file(
    source: str,
    path: str,
    convert_code: Callable[..., object],
    convert_source: Callable[..., object],
    repeats: int,
) -> dict[str, float]:
    """The four timings of one file (see the module docstring)."""
    converted = convert_code(source, path).output
    return measure(
        {
            "floor": lambda: libcst.parse_module(source).code,
            "core": lambda: convert_code(source, path),
            "engine": lambda: convert_source(source, path, format=False),
            # A script with no training loop has no output for black to format.
            "black": lambda: converted and black.format_str(converted, mode=black.Mode()),
        },
        repeats,
    )


def row(label: str, lines: str, timings: dict[str, float]) -> str:
    floor, core, engine = timings["floor"], timings["core"], timings["engine"]
    return (
        f"{label[:36]:<36} {lines:>5} {ms(floor)} {ms(core)} {ms(engine - core)} {ms(engine)} "
        f"{engine / floor:>7.2f}x {core / floor:>6.2f}x {ms(timings['black'])}"
    )


def measure(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per step, after a warm-up, rotating the order between runs."""
    for step in steps.values():
        step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for run in range(repeats):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            start = time.perf_counter()
            steps[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def print_batch(files: list[Path], convert_files: Callable[..., object]) -> None:
    """The whole batch with black, serially and with a process per core (`-j`)."""
    cores = os.cpu_count() or 1
    print(f"\nbatch of {len(files)} files through convert_files, black included:")
    serial = None
    for jobs in sorted({1, cores}):
        start = time.perf_counter()
        list(convert_files(files, jobs=jobs))
        seconds = time.perf_counter() - start
        serial = serial or seconds
        print(f"  -j {jobs}: {seconds * 1000:8.1f} ms ({serial / seconds:.2f}x the speed of -j 1)")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def generated_script(min_lines: int) -> str:
    """A plausible, valid training script of at least `min_lines` lines."""
    parts = [_HEAD]
    index = 0
    while sum(part.count("\n") for part in parts) + _TAIL.count("\n") < min_lines:
        parts.append(_BLOCK.format(i=index, width=16 + index % 5 * 8))
        index += 1
    parts.append(_TAIL)
    return "".join(parts)


_HEAD = '''\
"""Generated benchmark script: a classifier on synthetic data, many helpers."""
import argparse
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset


class SyntheticDigits(Dataset):
    """Random 28x28 images with labels that depend on them, so training means something."""

    def __init__(self, size, seed):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(size, 1, 28, 28, generator=generator)
        self.labels = (self.images.mean(dim=(1, 2, 3)) * 40).long().clamp(0, 9) % 10

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

'''

_BLOCK = '''
class Block{i}(nn.Module):
    """Residual block number {i}: conv, norm, activation, optional dropout."""

    def __init__(self, channels={width}, dropout=0.{i}):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(p=min(dropout, 0.5))

    def forward(self, x):
        residual = x
        x = self.conv(x)
        x = self.norm(x)
        x = F.relu(x)
        return self.dropout(x) + residual


def warmup_factor_{i}(step, warmup={i} + 10, total=1000):
    # linear warm-up, then cosine decay
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def top_k_accuracy_{i}(logits, target, k=3):
    with torch.no_grad():
        top = logits.topk(k, dim=1).indices
        hits = (top == target.unsqueeze(1)).any(dim=1)
        return hits.float().mean().item()


def jitter_{i}(images, scale=0.0{i}):
    noise = torch.randn_like(images) * scale
    return (images + noise).clamp(-3.0, 3.0)


def describe_{i}(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {{"block": {i}, "params": total, "trainable": trainable}}

'''

_TAIL = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]"
                  f"\\tLoss: {loss.item():.6f}")


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print(f"Test set: Average loss: {test_loss:.4f}, "
          f"Accuracy: {correct}/{len(test_loader.dataset)}")


def main():
    parser = argparse.ArgumentParser(description="synthetic digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--no-cuda", action="store_true", default=False)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--save-model", action="store_true", default=False)
    args = parser.parse_args()
    use_cuda = not args.no_cuda and torch.cuda.is_available()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    device = torch.device("cuda" if use_cuda else "cpu")

    train_loader = DataLoader(SyntheticDigits(512, 0), batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(SyntheticDigits(256, 1), batch_size=args.test_batch_size)

    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "synthetic_cnn.pt")


if __name__ == "__main__":
    main()
"""


if __name__ == "__main__":
    sys.exit(main())
