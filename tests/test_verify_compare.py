"""Comparing two trajectories, and how the verdict reads. No subprocesses here."""

import json
import math
from pathlib import Path

import click

from migrate.trajectory import Trajectory
from migrate.verify import compare, losses_match
from migrate.verify_report import FIRST_DIVERGENCE_MARK, summary, table_lines, verdict_json

WEIGHTS = ("torch.float32 (2, 3) aaaa", "torch.float32 (2,) bbbb")
LOSSES = (0.75, 0.5, 0.25)


def trajectory(losses=LOSSES, weights=WEIGHTS, finished_early=False):
    return Trajectory(
        losses=tuple(losses), weights=weights, param_count=8, finished_early=finished_early
    )


def test_identical_losses_from_identical_weights_are_equivalent():
    verdict = compare(trajectory(), trajectory(), steps=3)

    assert verdict.equivalent
    assert verdict.first_divergence is None
    assert summary(verdict) == (
        "equivalent: 3/3 steps bit-identical, starting weights match (8 parameters)"
    )


def test_by_default_a_difference_in_the_last_bit_is_a_divergence():
    nudged = (LOSSES[0], math.nextafter(LOSSES[1], 1.0), LOSSES[2])

    verdict = compare(trajectory(), trajectory(nudged), steps=3)

    assert not verdict.equivalent
    assert verdict.first_divergence == 2
    assert summary(verdict).startswith("NOT equivalent: first divergence at step 2")


def test_rtol_accepts_differences_within_it_and_rejects_larger_ones():
    assert losses_match(1.0, 1.0 + 1e-7, rtol=1e-6)
    assert not losses_match(1.0, 1.0 + 1e-5, rtol=1e-6)


def test_two_nans_match():
    assert losses_match(math.nan, math.nan)
    assert not losses_match(math.nan, 1.0)


def test_a_script_that_stops_early_diverges_at_its_first_missing_step():
    verdict = compare(trajectory(), trajectory(LOSSES[:2], finished_early=True), steps=3)

    assert verdict.first_divergence == 3
    assert verdict.rows[2].converted is None
    assert "the converted script ended after 2 steps" in summary(verdict)


def test_a_script_that_never_calls_backward_has_no_starting_weights_to_compare():
    never = Trajectory(losses=(), weights=(), param_count=0, finished_early=True)

    verdict = compare(trajectory(), never, steps=3)

    assert not verdict.equivalent
    assert verdict.first_divergence == 1
    assert "no starting weights from the converted script" in summary(verdict)


def test_scripts_that_both_end_early_the_same_way_are_equivalent():
    verdict = compare(trajectory(finished_early=True), trajectory(finished_early=True), steps=20)

    assert verdict.equivalent
    assert "3/3 steps bit-identical (both scripts ended after 3 of 20)" in summary(verdict)


def test_different_starting_weights_are_not_equivalent_even_with_equal_losses():
    other_weights = (WEIGHTS[0], "torch.float32 (2,) cccc")

    verdict = compare(trajectory(), trajectory(weights=other_weights), steps=3)

    assert not verdict.equivalent
    assert not verdict.weights_match
    assert "starting weights differ (1 of the original's 2 tensors" in summary(verdict)


def test_the_weights_compare_as_a_multiset_whatever_the_traversal_order():
    verdict = compare(trajectory(), trajectory(weights=tuple(reversed(WEIGHTS))), steps=3)

    assert verdict.weights_match


def test_the_table_marks_only_the_first_divergent_step():
    verdict = compare(trajectory(), trajectory((0.75, 0.6, 0.35)), steps=3)

    lines = [click.unstyle(line) for line in table_lines(verdict)]

    assert lines[0].split() == ["step", "original", "converted", "difference"]
    marked = [line.split()[0] for line in lines if FIRST_DIVERGENCE_MARK in line]
    assert marked == ["2"]


def test_the_table_shows_losses_as_full_float_reprs():
    loss = 0.6523681879043579

    [_, row] = table_lines(compare(trajectory([loss]), trajectory([loss]), steps=1))

    assert click.unstyle(row).split() == ["1", repr(loss), repr(loss), "0.0"]


def test_json_writes_non_finite_losses_as_strings_so_strict_parsers_accept_it():
    verdict = compare(trajectory([math.nan]), trajectory([math.inf]), steps=1)

    report = verdict_json(verdict, original=Path("a.py"), converted=Path("b.py"))

    step = json.loads(json.dumps(report, allow_nan=False))["steps"][0]
    assert (step["original"], step["converted"]) == ("nan", "inf")
