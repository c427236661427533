"""A tiny, predictable converter for testing everything around the real one.

The CLI and engine tests are about the contract (where files go, exit codes, checks), so
they install this in place of `migrate.convert.convert_code` and stay independent of how
the real converter rewrites code:
- a source with `.backward()` is converted: the output gains a `# converted for TARGET`
  header, and an info finding MIG101 points at the backward line;
- a line with `# review` gets a not-converted finding MIG301;
- a source that already has the header is unchanged;
- anything else has no training loop.
Like the real converter, it parses with libcst first and returns unformatted code.
"""

from __future__ import annotations

import libcst

from migrate.findings import ConversionResult, Finding, Severity, Status

HEADER = "# converted for {target}\n"

TRAINING_SCRIPT = """\
import torch
model=torch.nn.Linear( 2,1 )
for x in range(3):
    loss=model(torch.ones(2)).sum()
    loss.backward()
"""

CONVERTED_SCRIPT = """\
# converted for runtime
import torch

model = torch.nn.Linear(2, 1)
for x in range(3):
    loss = model(torch.ones(2)).sum()
    loss.backward()
"""

NO_LOOP_SCRIPT = "import torch\nprint(torch.ones(2))\n"


def convert_code(source: str, path: str = "<stdin>", target: str = "runtime") -> ConversionResult:
    libcst.parse_module(source)
    if source.startswith("# converted for "):
        return ConversionResult(path, Status.UNCHANGED, source)
    lines = source.splitlines()
    backward = [number for number, line in enumerate(lines, 1) if ".backward()" in line]
    if not backward:
        return ConversionResult(path, Status.NO_TRAINING_LOOP, None)
    findings = [Finding(path, backward[0], 5, "MIG101", Severity.INFO, "converted train loop")]
    findings += [
        Finding(path, number, 1, "MIG301", Severity.NOT_CONVERTED, "not converted: odd line")
        for number, line in enumerate(lines, 1)
        if "# review" in line
    ]
    return ConversionResult(path, Status.CONVERTED, HEADER.format(target=target) + source, findings)
