"""`migrate convert` with the real converter, over every fixture and in real processes."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from migrate.cli import main

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures").glob("*/original.py"))

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("migrate.convert") is None, reason="the converter is not there yet"
    ),
    pytest.mark.skipif(not FIXTURES, reason="no fixtures yet"),
]


def migrate_convert(*args: object) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args)], prog_name="migrate")


@pytest.mark.parametrize("original", FIXTURES, ids=lambda path: path.parent.name)
def test_a_converted_fixture_converts_to_itself(original, tmp_path):
    converted = tmp_path / "converted.py"
    first = migrate_convert(original, "-o", converted)
    assert first.exit_code == 0, first.output
    assert converted.exists(), f"not converted:\n{first.output}"
    before = converted.read_bytes()

    again = migrate_convert(converted, "--in-place")

    assert again.exit_code == 0, again.output
    assert f"{converted}: already converted, nothing to do" in again.output
    assert converted.read_bytes() == before
    assert migrate_convert(converted, "--check").exit_code == 0


def test_stdin_to_stdout_in_a_real_process_gives_the_converted_code():
    original = FIXTURES[0].read_bytes()
    in_process = CliRunner().invoke(main, ["convert", "-"], input=original)

    completed = subprocess.run(
        [sys.executable, "-m", "migrate", "convert", "-"],
        input=original,
        capture_output=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout == in_process.stdout_bytes
    assert b"class " in completed.stdout
    assert b"<stdin>: wrote <stdout>" in completed.stderr


def test_j_gives_the_same_files_and_report_as_one_process(tmp_path):
    for name in ("one", "two"):
        for original in FIXTURES:
            copy = tmp_path / name / f"{original.parent.name}.py"
            copy.parent.mkdir(exist_ok=True)
            copy.write_bytes(original.read_bytes())

    serial = migrate_convert(tmp_path / "one", "-j", "1")
    parallel = migrate_convert(tmp_path / "two", "-j", "2")

    assert parallel.exit_code == serial.exit_code
    assert parallel.output == serial.output.replace(str(tmp_path / "one"), str(tmp_path / "two"))
    for written in (tmp_path / "one").glob("*_lightning.py"):
        assert (tmp_path / "two" / written.name).read_bytes() == written.read_bytes()


def test_an_epoch_loop_whose_batch_loop_cannot_be_read_leaves_the_file_as_it_was(tmp_path):
    """Batches pulled by hand in a `while True:` inside the epoch loop: no training_step could be
    written, and a LightningModule without one would not run, so nothing is written and MIG303
    says why."""
    script = tmp_path / "loop.py"
    script.write_bytes((Path(__file__).parent / "data" / "manual_iterator_loop.py").read_bytes())

    result = migrate_convert(script)

    assert result.exit_code == 0, result.output
    assert "MIG303" in result.output
    assert f"{script}: training loop not converted (see MIG303), nothing written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.py"]
