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
