"""Golden conversions of every fixture, and proof that each converted script trains the same.

Per fixture (`fixtures/<case>/`), one behaviour per test:
- `original.py` converts to `expected.py` (formatted, as `migrate convert` writes it);
- the findings and summary equal `expected_report.txt`. Format (see tests/fixture_goldens.py):
  one `original.py:LINE:COL: CODE message` line per finding, then the CLI's summary line,
  colours stripped; regenerate with `python tests/fixture_goldens.py` and review the diff;
- converting `expected.py` again changes nothing (idempotence);
- `expected.py` compiles;
- it trains equivalently: `verify_pair`, same starting weights, bit-identical losses for
  50 steps (with --fake-data where the README asks for it);
- run to the end, it reports the same final metrics: every epoch-level metric the converted
  script logs (read from `trainer.callback_metrics` after fit/test) is a value the original
  printed, to the precision it printed it (or that value in percent); a metric the original
  printed floored (`//`, reported as MIG201) may show as the integer floor of the logged mean.

The run-to-end pairs are the slow part (~5 s a process): each case runs its two scripts side
by side, one process each.
"""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

from fixture_goldens import FIXTURES, cases, convert, needs_fake_data, report_text
from migrate.engine import convert_source
from migrate.findings import Status
from migrate.verify import _child_environment, verify_pair

CASES = cases()
RUNNER = Path(__file__).resolve().parent / "fixture_runner.py"
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.(\d+))?(?:e-?\d+)?(\s?%)?")


@cache
def _conversion(case: str):
    return convert(case)


def _expected(case: str) -> str:
    return (FIXTURES / case / "expected.py").read_text()


@pytest.mark.parametrize("case", CASES)
def test_converts_to_expected(case):
    result = _conversion(case)
    assert result.status is Status.CONVERTED
    assert result.output == _expected(case)


@pytest.mark.parametrize("case", CASES)
def test_report_matches_expected(case):
    assert report_text(_conversion(case)) == (FIXTURES / case / "expected_report.txt").read_text()


@pytest.mark.parametrize("case", CASES)
def test_converting_expected_changes_nothing(case):
    again = convert_source(_expected(case), "expected.py")
    assert again.status is Status.UNCHANGED
    assert again.output == _expected(case)


@pytest.mark.parametrize("case", CASES)
def test_expected_compiles(case):
    compile(_expected(case), f"{case}/expected.py", "exec")


@pytest.mark.parametrize("case", CASES)
def test_trains_equivalently(case):
    verdict = verify_pair(
        FIXTURES / case / "original.py",
        FIXTURES / case / "expected.py",
        steps=50,
        fake_data=needs_fake_data(case),
    )
    assert verdict.equivalent, verdict


def _run_to_end(script: Path, fake_data: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="fixture-run-") as scratch:
        result = Path(scratch) / "result.json"
        command = [sys.executable, str(RUNNER), str(script), str(result)]
        completed = subprocess.run(
            command + (["--fake-data"] if fake_data else []),
            cwd=scratch,
            env=_child_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, f"{script} failed:\n{completed.stderr[-3000:]}"
        return json.loads(result.read_text())


def _runs_to_end(case: str) -> tuple[dict, dict]:
    """The original and its conversion, run side by side (one process each)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        original, converted = (
            pool.submit(_run_to_end, FIXTURES / case / name, needs_fake_data(case))
            for name in ("original.py", "expected.py")
        )
        return original.result(), converted.result()


def _epoch_metrics(source: str) -> set[str]:
    """Names the converted script logs once per epoch: everything but training_step's
    per-step values (logged without `on_epoch=True`), which the original printed only now and then."""
    names = set()
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef):
            continue
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr != "log" or not call.args or not isinstance(call.args[0], ast.Constant):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            on_epoch = keywords.get("on_epoch")
            per_step = function.name == "training_step" and not (
                isinstance(on_epoch, ast.Constant) and on_epoch.value is True
            )
            if not per_step:
                names.add(call.args[0].value)
    return names


def _floored(case: str) -> set[str]:
    """Metrics the original printed floored (`100 * correct // total`): MIG201 names them."""
    return {
        re.match(r"'([^']+)'", f.message).group(1)
        for f in _conversion(case).findings
        if f.code == "MIG201"
    }


def _printed(value: float, stdout: str, floored: bool = False) -> bool:
    """`value` is one of the numbers in `stdout`, to the decimals shown (or in percent); integers
    must match exactly, so that epoch counters do not pass for metrics, unless followed by `%`
    (a percentage printed rounded, `{:.0f}%`). `floored`: a metric
    the original printed with `//` (MIG201) may also show as the integer floor of `value`."""
    for match in _NUMBER.finditer(stdout):
        decimals = len(match.group(1) or "")
        # an integer followed by `%` is a percentage shown rounded (`{:.0f}%`), not a counter
        rounded = decimals or match.group(2)
        tolerance = 0.5 * 10**-decimals + 1e-9 if rounded else 1e-6
        shown = float(match.group(0).rstrip("% "))
        if floored and not match.group(1):
            # the fp32 mean may land just under an exact integer: floor with a relative margin
            if any(shown == math.floor(c + 1e-6 * max(1.0, abs(c))) for c in (value, 100 * value)):
                return True
        # rel_tol: fp32 epoch means against the original's fp64 Python sums, printed in full.
        if any(math.isclose(c, shown, rel_tol=1e-6, abs_tol=tolerance) for c in (value, 100 * value)):
            return True
    return False


@pytest.mark.parametrize("case", CASES)
def test_same_final_metrics(case):
    original, converted = _runs_to_end(case)
    names = _epoch_metrics(_expected(case))
    missing = {name for name in names if name not in converted["metrics"]}
    assert not missing, f"logged but not in callback_metrics: {missing}"
    floored = _floored(case)
    differ = {
        name: converted["metrics"][name]
        for name in sorted(names)
        if not _printed(converted["metrics"][name], original["stdout"], floored=name in floored)
    }
    assert not differ, f"final metrics the original never printed: {differ}\n{original['stdout'][-2000:]}"
