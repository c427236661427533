"""Checks that a converted script trains the same as its original.

Each script runs in its own process and its own empty working directory, seeded the same
and with the same arguments, under `migrate.capture`. The verdict compares the weights the
two started from and the loss at every backward call: bit for bit by default, or within
a relative tolerance.

Standard library only: torch is imported by the child processes, never here.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import migrate
from migrate.trajectory import CaptureRequest, Trajectory

DEFAULT_STEPS = 20
ERROR_TAIL_LINES = 20

# The directory that holds the `migrate` package. The child needs it on its path to import
# `migrate.capture`; from a source checkout it also makes the bundled `runtime` importable.
_PACKAGE_ROOT = Path(migrate.__file__).resolve().parent.parent


class VerifyError(Exception):
    """The pair could not be compared; `migrate verify` exits 2."""


class ScriptFailed(VerifyError):
    """`role` is "original" or "converted"; `error` is the tail of the script's stderr."""

    def __init__(self, role: str, script: str, error: str) -> None:
        super().__init__(f"the {role} script {script} failed:\n{error}")
        self.role = role
        self.script = script
        self.error = error


class ConverterUnavailable(VerifyError):
    pass


@dataclass(frozen=True)
class StepRow:
    """One backward call of each script; a loss is None where that script had ended."""

    step: int
    original: float | None
    converted: float | None
    matches: bool

    @property
    def difference(self) -> float | None:
        if self.original is None or self.converted is None:
            return None
        return self.converted - self.original


@dataclass(frozen=True)
class Verdict:
    original: Trajectory
    converted: Trajectory
    steps: int
    rtol: float | None
    rows: tuple[StepRow, ...]

    @property
    def weights_match(self) -> bool:
        """Compared as multisets: the graph walk's order says nothing about the weights."""
        return sorted(self.original.weights) == sorted(self.converted.weights)

    @property
    def first_divergence(self) -> int | None:
        """The 1-based step of the first loss that differs, or None."""
        return next((row.step for row in self.rows if not row.matches), None)

    @property
    def equivalent(self) -> bool:
        return self.weights_match and self.first_divergence is None


def losses_match(original: float, converted: float, rtol: float | None = None) -> bool:
    """Bit-identical when rtol is None, else within rtol of the larger magnitude.

    Two NaNs match: both scripts produced the same non-number.
    """
    if math.isnan(original) or math.isnan(converted):
        return math.isnan(original) and math.isnan(converted)
    if rtol is None:
        return original == converted
    return math.isclose(original, converted, rel_tol=rtol, abs_tol=0.0)


def compare(
    original: Trajectory, converted: Trajectory, *, steps: int, rtol: float | None = None
) -> Verdict:
    """A step where only one script still ran counts as a divergence."""
    count = max(len(original.losses), len(converted.losses))
    rows = []
    for index in range(count):
        a = original.losses[index] if index < len(original.losses) else None
        b = converted.losses[index] if index < len(converted.losses) else None
        matches = a is not None and b is not None and losses_match(a, b, rtol)
        rows.append(StepRow(step=index + 1, original=a, converted=b, matches=matches))
    return Verdict(original=original, converted=converted, steps=steps, rtol=rtol, rows=tuple(rows))


def _tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _child_environment() -> dict[str, str]:
    """Same hash seed for both, CPU only so fp32 results compare, and `migrate` importable."""
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if path
    )
    return env


def run_script(
    script: Path,
    *,
    steps: int = DEFAULT_STEPS,
    fake_data: bool = False,
    seed: int = 0,
    script_args: Sequence[str] = (),
    import_dir: Path | None = None,
) -> Trajectory:
    """Runs `python script *script_args` in a fresh process and empty temp directory.

    `import_dir` goes first on sys.path in place of the script's own directory; it lets a
    converted copy that lives elsewhere import the original's neighbours.

    A failure is returned, not raised: `error` holds the tail of the script's stderr.
    """
    script = script.resolve()
    with tempfile.TemporaryDirectory(prefix="migrate-verify-") as scratch:
        scratch_dir = Path(scratch)
        workdir = scratch_dir / "cwd"
        workdir.mkdir()
        request = CaptureRequest(
            script=str(script),
            argv=tuple(script_args),
            import_dir=str((import_dir or script.parent).resolve()),
            steps=steps,
            seed=seed,
            fake_data=fake_data,
            result_path=str(scratch_dir / "result.json"),
        )
        request_path = scratch_dir / "request.json"
        request.write(request_path)
        stdout_path = scratch_dir / "stdout.txt"
        stderr_path = scratch_dir / "stderr.txt"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            completed = subprocess.run(
                [sys.executable, "-m", "migrate.capture", str(request_path)],
                cwd=workdir,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                check=False,
            )
        result_path = Path(request.result_path)
        if completed.returncode == 0 and result_path.exists():
            return Trajectory.read(result_path)
        stderr_tail = _tail(stderr_path.read_text(errors="replace"))
        return Trajectory.failed(stderr_tail or f"exited with status {completed.returncode}")


def load_converter() -> Callable[[str], str]:
    """`migrate.engine.convert_source` as text in, text out, once the converter exists.

    A script the converter cannot convert raises `VerifyError` with the converter's findings.
    """
    if importlib.util.find_spec("migrate.convert") is None:
        raise ConverterUnavailable(
            "the converter is not available yet, so CONVERTED is required: "
            "convert the script yourself and pass both files"
        )
    convert_source = importlib.import_module("migrate.engine").convert_source

    def convert(source: str) -> str:
        result = convert_source(source)
        if result.output is None:
            reasons = [finding.format() for finding in result.findings] or [result.status.value]
            raise VerifyError(f"cannot convert the original: {'; '.join(reasons)}")
        return result.output

    return convert


def verify_pair(
    original: Path,
    converted: Path | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    fake_data: bool = False,
    rtol: float | None = None,
    script_args: Sequence[str] = (),
    seed: int = 0,
) -> Verdict:
    """Runs both scripts side by side and compares their first `steps` backward calls.

    With `converted` None, `original` is converted in memory first. Raises `ScriptFailed`
    when either script fails, and `VerifyError` when neither calls backward.
    """
    run = functools.partial(
        run_script, steps=steps, fake_data=fake_data, seed=seed, script_args=script_args
    )
    with tempfile.TemporaryDirectory(prefix="migrate-converted-") as scratch:
        if converted is None:
            converted_script = Path(scratch) / original.name
            converted_script.write_text(load_converter()(original.read_text()))
            import_dir = original.parent
        else:
            converted_script, import_dir = converted, None
        with ThreadPoolExecutor(max_workers=2) as pool:
            original_future = pool.submit(run, original)
            converted_future = pool.submit(run, converted_script, import_dir=import_dir)
            original_run = original_future.result()
            converted_run = converted_future.result()

    converted_name = str(converted) if converted else f"{original} (converted in memory)"
    for role, name, trajectory in (
        ("original", str(original), original_run),
        ("converted", converted_name, converted_run),
    ):
        if trajectory.error is not None:
            raise ScriptFailed(role, name, trajectory.error)
    if not original_run.losses and not converted_run.losses:
        raise VerifyError("neither script called backward, so there is nothing to compare")
    return compare(original_run, converted_run, steps=steps, rtol=rtol)
