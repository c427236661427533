"""The verify library: one script run under capture, and a pair run side by side."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import migrate.verify
from migrate.verify import run_script, verify_pair

SCRIPTS = Path(__file__).parent / "verify_scripts"
HAND_LOOP_PARAMETERS = (10 * 32 + 32) + (32 * 2 + 2)


@pytest.fixture(scope="module")
def in_memory_verdict():
    """Three steps of hand_loop_refactored.py against a copy "converted" by an identity."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migrate.verify, "load_converter", lambda: lambda source: source)
        return verify_pair(SCRIPTS / "hand_loop_refactored.py", steps=3)


def test_without_a_converted_script_the_original_is_converted_in_memory(in_memory_verdict):
    # The converted copy lives in a temp dir, yet imports its neighbour training_utils.
    assert in_memory_verdict.equivalent


def test_a_run_stops_after_the_requested_number_of_backward_calls(in_memory_verdict):
    run = in_memory_verdict.original
    assert len(run.losses) == 3
    assert not run.finished_early


def test_the_starting_weights_are_the_leaves_that_require_grad(in_memory_verdict):
    run = in_memory_verdict.original
    assert len(run.weights) == 4
    assert run.param_count == HAND_LOOP_PARAMETERS


@pytest.fixture(scope="module")
def environment_report():
    return run_script(
        SCRIPTS / "reports_its_environment.py", seed=7, script_args=["--flag", "value"]
    )


def test_a_script_runs_seeded_as_python_script_py_would_in_an_empty_directory(environment_report):
    seeded_draws = (
        random.Random(7).random(),
        np.random.RandomState(7).random_sample(),
        torch.rand((), dtype=torch.float64, generator=torch.Generator().manual_seed(7)).item(),
    )
    flags = {
        "run as __main__": 1.0,
        "sys.argv holds the script args": 1.0,
        "the script's directory is first on sys.path": 1.0,
        "the working directory is a fresh empty one": 1.0,
        "PYTHONHASHSEED is fixed": 1.0,
        "CUDA is hidden": 1.0,
    }
    assert environment_report.losses == (*seeded_draws, *flags.values())


def test_a_script_that_ends_before_the_requested_steps_is_recorded_as_ending_early(
    environment_report,
):
    assert len(environment_report.losses) < 20
    assert environment_report.finished_early
    assert environment_report.error is None
