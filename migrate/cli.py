"""The `migrate` command line: each command is a thin shell over a library module."""

from __future__ import annotations

import json
from pathlib import Path

import click

from migrate.verify import (
    DEFAULT_STEPS,
    ConverterUnavailable,
    ScriptFailed,
    VerifyError,
    verify_pair,
)
from migrate.verify_report import styled_summary, table_lines, verdict_json

_SCRIPT_ARGS = "migrate.script_args"

_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


class _CommandWithScriptArgs(click.Command):
    """Keeps everything after `--` for the scripts themselves.

    Left to click, an omitted optional argument (CONVERTED) would swallow the first one.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta[_SCRIPT_ARGS] = tuple(args[split + 1 :])
            args = args[:split]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- SCRIPT_ARGS...]"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Convert plain PyTorch training scripts to Lightning-style code that trains the same."""


@main.command()
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    metavar="PATH...",
    type=click.Path(exists=True, allow_dash=True),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="A file for one input file; a directory for a directory or several inputs "
    "(their tree is mirrored under it).",
)
@click.option("--in-place", is_flag=True, help="Replace each input, keeping a copy as PATH.bak.")
@click.option("--dry-run", is_flag=True, help="Print a unified diff instead of writing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the findings and each file's status to FILE as JSON.",
)
@click.option(
    "--target",
    type=click.Choice(["runtime", "lightning"]),
    default="runtime",
    show_default=True,
    help="Import this package's runtime, or lightning.pytorch.",
)
@click.option("--no-format", is_flag=True, help="Leave the output unformatted (skip black).")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Convert with this many processes.",
)
@click.pass_context
def convert(
    ctx: click.Context,
    paths: tuple[str, ...],
    output: Path | None,
    in_place: bool,
    dry_run: bool,
    check: bool,
    report: Path | None,
    target: str,
    no_format: bool,
    jobs: int,
) -> None:
    """Convert PyTorch training scripts to LightningModule + LightningDataModule code.

    Each PATH is a script, a directory (its *.py files, except *_lightning.py ones and
    those in hidden directories and virtual environments), or - to read stdin and write
    stdout. Without -o or --in-place, train.py becomes train_lightning.py beside it.

    Prints each finding as path:line:col: MIGnnn message, then a summary line. Messages go
    to stderr when stdout carries code (-) or a diff (--dry-run).

    \b
    Exit status:
      0  done, including scripts without a training loop (nothing is written for them)
      1  --check found a file that would change, or a finding is at error level
      2  usage or input error (a syntax error, not UTF-8, too large, unreadable); the
         other files of the run are still converted
    """
    # Imported here, not at the top: libcst and black take half a second to import, which
    # `migrate verify` and every --help would pay for nothing.
    from migrate.convert_run import ConvertOptions, run
    from migrate.sources import UsageProblem

    options = ConvertOptions(
        paths=paths,
        output=output,
        in_place=in_place,
        dry_run=dry_run,
        check=check,
        report=report,
        target=target,
        format=not no_format,
        jobs=jobs,
    )
    try:
        status = run(options)
    except UsageProblem as problem:
        raise click.UsageError(str(problem)) from problem
    ctx.exit(status)


@main.command(cls=_CommandWithScriptArgs)
@click.argument("original", type=_existing_file)
@click.argument("converted", type=_existing_file, required=False)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=DEFAULT_STEPS,
    show_default=True,
    help="Compare this many backward calls, then stop both scripts.",
)
@click.option(
    "--fake-data",
    is_flag=True,
    help="Give the scripts offline stand-ins for torchvision's downloadable datasets.",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Accept losses within this relative tolerance instead of bit-identical ones.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for both scripts.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(
    ctx: click.Context,
    original: Path,
    converted: Path | None,
    steps: int,
    fake_data: bool,
    rtol: float | None,
    seed: int,
    as_json: bool,
) -> None:
    """Check that CONVERTED trains the same as ORIGINAL.

    Runs both with the same seed and arguments, and compares the weights they start from
    and the loss at each backward call. Without CONVERTED, ORIGINAL is converted in memory.

    Exit status: 0 equivalent, 1 not equivalent, 2 usage error or a script failed.
    """
    try:
        verdict = verify_pair(
            original,
            converted,
            steps=steps,
            fake_data=fake_data,
            rtol=rtol,
            script_args=ctx.meta.get(_SCRIPT_ARGS, ()),
            seed=seed,
        )
    except ConverterUnavailable as error:
        raise click.UsageError(str(error)) from error
    except VerifyError as error:
        _report_failure(error, as_json)
        ctx.exit(2)
    if as_json:
        click.echo(json.dumps(verdict_json(verdict, original, converted), indent=2))
    else:
        click.echo(f"original:  {original}")
        click.echo(f"converted: {converted or f'{original} (converted in memory)'}")
        click.echo()
        for line in table_lines(verdict):
            click.echo(line)
        click.echo(styled_summary(verdict))
    ctx.exit(0 if verdict.equivalent else 1)


def _report_failure(error: VerifyError, as_json: bool) -> None:
    failed = error.role if isinstance(error, ScriptFailed) else None
    if as_json:
        click.echo(
            json.dumps({"equivalent": False, "failed": failed, "error": str(error)}, indent=2)
        )
    else:
        click.echo(click.style(f"error: {error}", fg="red"), err=True)
