"""How a `Verdict` reads: a step table with a one-line summary, or JSON for CI."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from migrate.trajectory import Trajectory
from migrate.verify import StepRow, Verdict

FIRST_DIVERGENCE_MARK = "<- first divergence"


def _number(value: float | None) -> str:
    return "-" if value is None else repr(value)


def table_lines(verdict: Verdict) -> Iterator[str]:
    """Full float reprs, so "equal" on screen means equal; styled for a terminal."""
    header = ("step", "original", "converted", "difference")
    cells = [
        (str(row.step), _number(row.original), _number(row.converted), _number(row.difference))
        for row in verdict.rows
    ]
    widths = [max(len(line[column]) for line in [header, *cells]) for column in range(4)]

    def layout(line: tuple[str, ...]) -> str:
        step, *numbers = line
        return "  ".join(
            [step.rjust(widths[0])] + [n.ljust(w) for n, w in zip(numbers, widths[1:])]
        )

    yield click.style(layout(header).rstrip(), bold=True)
    first = verdict.first_divergence
    for row, line in zip(verdict.rows, cells):
        text = layout(line)
        if row.step == first:
            yield click.style(f"{text}  {FIRST_DIVERGENCE_MARK}", fg="red", bold=True)
        elif not row.matches:
            yield click.style(text.rstrip(), fg="red")
        else:
            yield text.rstrip()


def _losses_phrase(verdict: Verdict) -> str:
    compared = len(verdict.rows)
    first = verdict.first_divergence
    if first is None:
        how = "bit-identical" if verdict.rtol is None else f"within rtol {verdict.rtol:g}"
        ended = (
            f" (both scripts ended after {compared} of {verdict.steps})"
            if compared < verdict.steps
            else ""
        )
        return f"{compared}/{compared} steps {how}{ended}"
    row = verdict.rows[first - 1]
    differing = sum(not r.matches for r in verdict.rows)
    phrase = f"first divergence at step {first} ({differing} of {compared} steps differ"
    if row.original is None:
        phrase += f"; the original script ended after {first - 1} steps"
    elif row.converted is None:
        phrase += f"; the converted script ended after {first - 1} steps"
    return phrase + ")"


def _weights_phrase(verdict: Verdict) -> str:
    original, converted = verdict.original, verdict.converted
    if verdict.weights_match:
        return f"starting weights match ({original.param_count:,} parameters)"
    for role, run in (("original", original), ("converted", converted)):
        if not run.losses:
            return f"no starting weights from the {role} script, which never called backward"
    unmatched = sum((Counter(original.weights) - Counter(converted.weights)).values())
    return (
        f"starting weights differ ({unmatched} of the original's {len(original.weights)} "
        f"tensors have no bit-identical match; {original.param_count:,} vs "
        f"{converted.param_count:,} parameters)"
    )


def summary(verdict: Verdict) -> str:
    """e.g. `equivalent: 20/20 steps bit-identical, starting weights match (418 parameters)`."""
    verdict_word = "equivalent" if verdict.equivalent else "NOT equivalent"
    return f"{verdict_word}: {_losses_phrase(verdict)}, {_weights_phrase(verdict)}"


def styled_summary(verdict: Verdict) -> str:
    return click.style(summary(verdict), fg="green" if verdict.equivalent else "red", bold=True)


def _json_number(value: float | None) -> float | str | None:
    """NaN and infinities as strings: strict JSON parsers reject the bare tokens."""
    if value is None or math.isfinite(value):
        return value
    return repr(value)


def _step_json(row: StepRow) -> dict[str, Any]:
    return {
        "step": row.step,
        "original": _json_number(row.original),
        "converted": _json_number(row.converted),
        "difference": _json_number(row.difference),
        "match": row.matches,
    }


def verdict_json(verdict: Verdict, original: Path, converted: Path | None) -> dict[str, Any]:
    """`converted` None means it was converted in memory from `original`."""

    def side(script: Path | None, run: Trajectory) -> dict[str, Any]:
        return {
            "script": None if script is None else str(script),
            "steps_recorded": len(run.losses),
            "finished_early": run.finished_early,
            "parameters": run.param_count,
            "weight_tensors": len(run.weights),
        }

    return {
        "equivalent": verdict.equivalent,
        "weights_match": verdict.weights_match,
        "first_divergence": verdict.first_divergence,
        "steps_requested": verdict.steps,
        "steps_compared": len(verdict.rows),
        "rtol": verdict.rtol,
        "summary": summary(verdict),
        "original": side(original, verdict.original),
        "converted": side(converted, verdict.converted),
        "steps": [_step_json(row) for row in verdict.rows],
    }
