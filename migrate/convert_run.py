"""One `migrate convert` run: plan the files, convert them, then write, diff or check each.

Conversions may run in worker processes, but everything the user sees or gets on disk
happens here, in the parent, in input order, so the output of a run is deterministic.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import click

from migrate.engine import convert_bytes, convert_files
from migrate.findings import ConversionResult, Finding, Severity, Status
from migrate.report import (
    EXIT_CHANGES_OR_ERRORS,
    Outcome,
    finding_line,
    report_json,
    summary,
    summary_line,
)
from migrate.sources import STDIN, Job, plan
from migrate.writes import default_mode, file_mode, unified_diff, write_atomic

STDOUT = "<stdout>"
BACKUP_SUFFIX = ".bak"


@dataclass(frozen=True)
class ConvertOptions:
    """The options of `migrate convert`, as documented in its --help."""

    paths: tuple[str, ...]
    output: Path | None = None
    in_place: bool = False
    dry_run: bool = False
    check: bool = False
    report: Path | None = None
    target: str = "runtime"
    format: bool = True
    jobs: int = 1

    @property
    def writes(self) -> bool:
        return not (self.dry_run or self.check)


def run(options: ConvertOptions) -> int:
    """Converts every input and returns the exit status; raises `UsageProblem` before any work."""
    jobs = plan(options.paths, options.output, options.in_place)
    stdin = bool(jobs) and jobs[0].source is None
    # Code and diffs own stdout whenever they go there, so messages move to stderr.
    to_stdout = stdin and jobs[0].destination is None and options.writes
    say = functools.partial(click.echo, err=options.dry_run or to_stdout)
    if stdin:
        with click.open_file(STDIN, "rb") as stream:
            stdin_data = stream.read()
        results = [convert_bytes(stdin_data, jobs[0].name, options.target, options.format)]
    else:
        stdin_data = None
        sources = [job.source for job in jobs]
        results = convert_files(sources, options.target, options.format, options.jobs)
    outcomes = []
    for job, result in zip(jobs, results):
        outcome = _act(job, result, stdin_data, options)
        for finding in outcome.result.findings:
            say(finding_line(finding))
        say(_status_line(job, outcome, options))
        outcomes.append(outcome)
    counts = summary(outcomes, options.check)
    say(summary_line(counts, options.writes))
    if options.report is not None:
        document = json.dumps(report_json(outcomes, options.check), indent=2) + "\n"
        try:
            write_atomic(options.report, document.encode(), default_mode())
        except OSError as error:
            say(f"error: cannot write the report {options.report}: {error.strerror or error}")
            return max(int(counts["exit_code"]), EXIT_CHANGES_OR_ERRORS)
    return int(counts["exit_code"])


def _act(
    job: Job, result: ConversionResult, stdin_data: bytes | None, options: ConvertOptions
) -> Outcome:
    """Does with one result what the options ask: write it, print its diff, or nothing."""
    if result.status is Status.UNCHANGED and job.destination is None and options.writes:
        click.echo(stdin_data, nl=False)  # a filter passes already converted code through
        return Outcome(result, STDOUT)
    if result.status is not Status.CONVERTED:
        return Outcome(result)
    if options.dry_run:
        before = stdin_data if job.source is None else job.source.read_bytes()
        after_name = STDOUT if job.destination is None else str(job.destination)
        diff = unified_diff(before.decode("utf-8-sig"), result.output, job.name, after_name)
        click.echo(diff, nl=False)
    if not options.writes:
        return Outcome(result)
    if job.destination is None:
        click.echo(result.output, nl=False)
        return Outcome(result, STDOUT)
    try:
        _write(job, result.output, options.in_place)
    except OSError as error:
        message = f"cannot write {job.destination}: {error.strerror or error}"
        failure = Finding(job.name, 1, 1, "MIG909", Severity.ERROR, message)
        return Outcome(ConversionResult(job.name, Status.FAILED, None, [*result.findings, failure]))
    return Outcome(result, str(job.destination))


def _write(job: Job, output: str, in_place: bool) -> None:
    """Writes the output with the input's mode, after backing the input up if it is replaced."""
    mode = default_mode() if job.source is None else file_mode(job.source)
    if in_place:
        write_atomic(_backup(job.source), job.source.read_bytes(), mode)
    write_atomic(job.destination, output.encode("utf-8"), mode)


def _backup(source: Path) -> Path:
    return source.with_name(source.name + BACKUP_SUFFIX)


def _status_line(job: Job, outcome: Outcome, options: ConvertOptions) -> str:
    status = outcome.result.status
    if status is Status.FAILED:
        return f"{job.name}: failed, nothing written"
    if status is Status.NO_TRAINING_LOOP:
        return f"{job.name}: no training loop found, nothing written"
    if status is Status.UNCHANGED and any(f.code == "MIG303" for f in outcome.result.findings):
        return f"{job.name}: training loop not converted (see MIG303), nothing written"
    if status is Status.UNCHANGED:
        return f"{job.name}: already converted, nothing to do"
    where = STDOUT if job.destination is None else str(job.destination)
    if not options.writes:
        return f"{job.name}: would convert to {where}"
    if options.in_place:
        return f"{job.name}: converted in place, original kept as {_backup(job.source)}"
    return f"{job.name}: wrote {where}"
