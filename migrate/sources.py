"""Which files a `migrate convert` run reads, and where each one's output goes.

Deciding every destination before converting anything lets a run refuse up front, with a
usage error, anything that would overwrite an input it was not asked to overwrite.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

STDIN = "-"
CONVERTED_SUFFIX = "_lightning"


class UsageProblem(Exception):
    """The paths and options of a run do not fit together; the message says how to fix it."""


@dataclass(frozen=True)
class Job:
    """One input and its destination; None stands for stdin and stdout."""

    source: Path | None
    destination: Path | None

    @property
    def name(self) -> str:
        return "<stdin>" if self.source is None else str(self.source)


def plan(paths: Sequence[str], output: Path | None = None, in_place: bool = False) -> list[Job]:
    """The jobs for `migrate convert PATHS [-o OUTPUT] [--in-place]`, inputs in a stable order."""
    if output is not None and in_place:
        raise UsageProblem("-o and --in-place exclude each other: pick one")
    if STDIN in paths:
        return [_stdin_job(paths, output, in_place)]
    inputs = [Path(path) for path in paths]
    sources = _unique(source for given in inputs for source in _python_files(given, skip=output))
    if in_place:
        jobs = [Job(source, source) for source in sources]
    elif output is None:
        jobs = [Job(source, converted_name(source)) for source in sources]
    elif len(inputs) == 1 and not inputs[0].is_dir() and not output.is_dir():
        jobs = [Job(sources[0], output)]
    else:
        jobs = _mirrored(inputs, sources, output)
    if not in_place:
        _refuse_overwriting_inputs(jobs)
    return jobs


def converted_name(source: Path) -> Path:
    """`train.py` -> `train_lightning.py`, beside it."""
    return source.with_name(f"{source.stem}{CONVERTED_SUFFIX}{source.suffix}")


def _stdin_job(paths: Sequence[str], output: Path | None, in_place: bool) -> Job:
    if len(paths) > 1:
        raise UsageProblem("'-' (stdin) cannot be combined with other paths")
    if in_place:
        raise UsageProblem("--in-place needs files: stdin cannot be converted in place")
    if output is not None and output.is_dir():
        raise UsageProblem(f"-o must name a file when reading stdin, and {output} is a directory")
    return Job(None, output)


def _python_files(given: Path, skip: Path | None) -> list[Path]:
    """`given` itself, or the scripts under it that a user would want converted."""
    if not given.is_dir():
        return [given]
    skip_resolved = skip.resolve() if skip is not None else None
    found = []
    for directory, subdirectories, files in os.walk(given):
        here = Path(directory)
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if not _skipped_directory(here / name) and (here / name).resolve() != skip_resolved
        )
        found.extend(
            here / name
            for name in sorted(files)
            if name.endswith(".py")
            and not name.startswith(".")
            and not name.endswith(f"{CONVERTED_SUFFIX}.py")
        )
    return found


def _skipped_directory(directory: Path) -> bool:
    """Hidden directories, caches and virtual environments hold no scripts of the user's."""
    name = directory.name
    return (
        name.startswith(".")
        or name in ("__pycache__", "site-packages", "node_modules")
        or (directory / "pyvenv.cfg").exists()
    )


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _mirrored(inputs: list[Path], sources: list[Path], output: Path) -> list[Job]:
    """Under `output`, the tree of a lone directory, or of the inputs' common parent.

    Paths are made absolute without resolving symlinks, so a linked script keeps its place.
    """
    if output.exists() and not output.is_dir():
        raise UsageProblem(
            f"-o {output} is a file, but a directory or several inputs need a directory to mirror into"
        )
    if len(inputs) == 1 and inputs[0].is_dir():
        base = os.path.abspath(inputs[0])
    else:
        base = os.path.commonpath([os.path.dirname(os.path.abspath(given)) for given in inputs])
    return [Job(source, output / os.path.relpath(source, base)) for source in sources]


def _refuse_overwriting_inputs(jobs: list[Job]) -> None:
    inputs = {job.source.resolve(): job.source for job in jobs}
    for job in jobs:
        overwritten = inputs.get(job.destination.resolve())
        if overwritten is not None:
            raise UsageProblem(
                f"converting {job.source} would overwrite the input {overwritten}: "
                "choose another -o, or use --in-place"
            )
