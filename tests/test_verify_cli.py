"""`migrate verify` end to end: real scripts, each in its own subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import migrate.cli
import migrate.verify
from migrate.cli import main
from migrate.trajectory import Trajectory
from migrate.verify import compare
from migrate.verify_report import FIRST_DIVERGENCE_MARK

SCRIPTS = Path(__file__).parent / "verify_scripts"
HAND_LOOP = SCRIPTS / "hand_loop.py"
LIGHTNING_MODULE = SCRIPTS / "lightning_module.py"
ONE_STEP = Trajectory(losses=(0.5,), weights=("w",), param_count=1, finished_early=False)


@pytest.fixture(autouse=True, scope="module")
def each_distinct_run_once():
    """Runs are deterministic, so tests that run the same script the same way share the run.

    This keeps the module fast on two cores; every pair still compares two real runs.
    """
    real_run_script = migrate.verify.run_script
    runs = {}

    def run_once(script, **options):
        key = (Path(script).resolve(), repr(sorted(options.items())))
        if key not in runs:
            runs[key] = real_run_script(script, **options)
        return runs[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migrate.verify, "run_script", run_once)
        yield


@pytest.fixture(scope="module")
def lightning_module_with_lr_0_2(tmp_path_factory):
    return with_learning_rate(LIGHTNING_MODULE, 0.2, tmp_path_factory.mktemp("lr"))


def migrate_verify(*args: object) -> Result:
    return CliRunner().invoke(main, ["verify", *map(str, args)])


def with_learning_rate(script: Path, lr: float, directory: Path) -> Path:
    """A copy of `script` whose one `lr=0.1` is `lr`."""
    source = script.read_text()
    assert source.count("lr=0.1)") == 1
    variant = directory / script.name
    variant.write_text(source.replace("lr=0.1)", f"lr={lr})"))
    return variant


def test_a_hand_loop_and_a_lightning_module_that_train_the_same_are_equivalent():
    result = migrate_verify(HAND_LOOP, LIGHTNING_MODULE)

    assert result.exit_code == 0, result.output
    assert (
        "equivalent: 20/20 steps bit-identical, starting weights match (418 parameters)"
        in result.output
    )


def test_a_changed_learning_rate_diverges_at_step_2_after_the_first_update(
    lightning_module_with_lr_0_2,
):
    result = migrate_verify(HAND_LOOP, lightning_module_with_lr_0_2)

    assert result.exit_code == 1, result.output
    assert "NOT equivalent: first divergence at step 2" in result.output
    assert "starting weights match" in result.output
    [marked_row] = [line for line in result.output.splitlines() if FIRST_DIVERGENCE_MARK in line]
    assert marked_row.split()[0] == "2"


def test_a_different_initialisation_is_reported_as_different_starting_weights():
    result = migrate_verify(HAND_LOOP, SCRIPTS / "hand_loop_zero_bias.py")

    assert result.exit_code == 1, result.output
    assert "starting weights differ (2 of the original's 4 tensors" in result.output


def test_a_crashing_script_exits_2_and_shows_its_traceback_tail():
    crashes = SCRIPTS / "crashes.py"

    result = migrate_verify(crashes, HAND_LOOP)

    assert result.exit_code == 2
    assert "the original script" in result.stderr
    assert f'File "{crashes}", line 8, in <module>' in result.stderr
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in result.stderr


def test_an_mnist_script_that_downloads_runs_offline_under_fake_data(tmp_path):
    copy = tmp_path / "mnist_copy.py"
    copy.write_text((SCRIPTS / "mnist_download.py").read_text())

    result = migrate_verify(SCRIPTS / "mnist_download.py", copy, "--fake-data")

    assert result.exit_code == 0, result.output
    assert "equivalent: 20/20 steps bit-identical" in result.output


def test_rtol_accepts_losses_that_differ_slightly(tmp_path):
    result = migrate_verify(
        HAND_LOOP, with_learning_rate(HAND_LOOP, 0.1001, tmp_path), "--rtol", "1e-3"
    )

    assert result.exit_code == 0, result.output
    assert "equivalent: 20/20 steps within rtol 0.001" in result.output


def test_json_output_is_machine_readable(lightning_module_with_lr_0_2):
    result = migrate_verify(HAND_LOOP, lightning_module_with_lr_0_2, "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["equivalent"] is False
    assert report["weights_match"] is True
    assert report["first_divergence"] == 2
    assert report["original"]["parameters"] == 418
    assert report["original"]["steps_recorded"] == 20
    assert report["original"]["finished_early"] is False
    assert [step["step"] for step in report["steps"]] == list(range(1, 21))
    assert {"original", "converted", "difference", "match"} <= report["steps"][0].keys()


def test_arguments_after_a_double_dash_go_to_the_scripts_even_without_converted(monkeypatch):
    calls = []

    def record_call(original, converted, **options):
        calls.append((original, converted, options["script_args"]))
        return compare(ONE_STEP, ONE_STEP, steps=1)

    monkeypatch.setattr(migrate.cli, "verify_pair", record_call)

    result = migrate_verify(HAND_LOOP, "--", "--epochs", "1")

    assert result.exit_code == 0, result.output
    assert calls == [(HAND_LOOP, None, ("--epochs", "1"))]


def test_a_missing_script_is_a_usage_error(tmp_path):
    result = migrate_verify(tmp_path / "missing.py", HAND_LOOP)

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_without_converted_the_original_is_converted_in_memory():
    original = Path(__file__).resolve().parent.parent / "fixtures" / "module_subclass_regression" / "original.py"
    result = migrate_verify(original, "--steps", "10")

    assert result.exit_code == 0, result.output
    assert "10/10 steps bit-identical" in result.output


def test_python_dash_m_migrate_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "migrate", "verify", "--help"], capture_output=True, text=True
    )

    assert result.returncode == 0
    assert (
        "Usage: migrate verify [OPTIONS] ORIGINAL [CONVERTED] [-- SCRIPT_ARGS...]" in result.stdout
    )
