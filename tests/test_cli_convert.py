"""`migrate convert`, line by line of its contract, with a stand-in converter.

The stand-in (tests/convert_stand_in.py) converts any script with `.backward()`, so these
tests pin down the command itself: where outputs go, what is printed, the exit codes.
"""

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import migrate.engine
import migrate.writes
from convert_stand_in import CONVERTED_SCRIPT, NO_LOOP_SCRIPT, TRAINING_SCRIPT, convert_code
from migrate.cli import main
from migrate.findings import ConversionResult, Status

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def stand_in_converter(monkeypatch):
    monkeypatch.setattr(migrate.engine, "convert_code", convert_code)


def migrate_convert(*args: object, stdin: bytes | None = None, color: bool = False) -> Result:
    return CliRunner().invoke(
        main, ["convert", *map(str, args)], input=stdin, color=color, prog_name="migrate"
    )


def script(path: Path, text: str = TRAINING_SCRIPT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def files_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


# Usage and help


def test_the_usage_line_is_the_contracts():
    result = migrate_convert("--help")

    assert result.exit_code == 0
    assert "Usage: migrate convert [OPTIONS] PATH..." in result.output
    for option in ("-o", "--in-place", "--dry-run", "--check", "--report", "--no-format", "-j"):
        assert f"{option}" in result.output
    assert "--target [runtime|lightning]" in result.output


def test_help_documents_the_exit_codes():
    result = migrate_convert("--help")

    assert "Exit status:" in result.output
    for line in ("0  done", "1  --check found a file that would change", "2  usage or input error"):
        assert line in result.output


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = migrate_convert(tmp_path / "missing.py")

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_no_path_is_a_usage_error():
    assert migrate_convert().exit_code == 2


# Where the output goes


def test_by_default_it_writes_stem_lightning_py_beside_the_input_and_says_where(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train)

    assert result.exit_code == 0, result.output
    written = tmp_path / "train_lightning.py"
    assert written.read_text() == CONVERTED_SCRIPT
    assert f"{train}: wrote {written}" in result.output


def test_the_input_is_never_overwritten_without_in_place(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train)

    assert train.read_text() == TRAINING_SCRIPT


def test_o_names_the_output_file_for_one_input_file(tmp_path):
    train = script(tmp_path / "train.py")
    out = tmp_path / "elsewhere" / "converted.py"

    result = migrate_convert(train, "-o", out)

    assert result.exit_code == 0, result.output
    assert out.read_text() == CONVERTED_SCRIPT
    assert files_under(tmp_path) == {"train.py", "elsewhere/converted.py"}


def test_o_that_is_an_existing_directory_takes_one_input_file_under_its_name(tmp_path):
    train = script(tmp_path / "train.py")
    (tmp_path / "out").mkdir()

    result = migrate_convert(train, "-o", tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "train.py").read_text() == CONVERTED_SCRIPT


def test_o_is_a_directory_for_a_directory_whose_tree_is_mirrored(tmp_path):
    for name in ("project/train.py", "project/models/gan/train_gan.py"):
        script(tmp_path / name)

    result = migrate_convert(tmp_path / "project", "-o", tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {"train.py", "models/gan/train_gan.py"}
    assert (tmp_path / "out/models/gan/train_gan.py").read_text() == CONVERTED_SCRIPT


def test_o_is_a_directory_for_several_inputs_mirrored_from_their_common_parent(tmp_path):
    first = script(tmp_path / "a" / "train.py")
    second = script(tmp_path / "b" / "train.py")

    result = migrate_convert(first, second, "-o", tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == {"a/train.py", "b/train.py"}


def test_o_that_is_a_file_cannot_take_several_inputs(tmp_path):
    first, second = script(tmp_path / "one.py"), script(tmp_path / "two.py")
    existing = script(tmp_path / "out.py", "x = 1\n")

    result = migrate_convert(first, second, "-o", existing)

    assert result.exit_code == 2
    assert "need a directory" in result.output


def test_o_onto_an_input_is_refused_before_anything_is_written(tmp_path):
    first, second = script(tmp_path / "one.py"), script(tmp_path / "two.py")

    result = migrate_convert(first, second, "-o", tmp_path)

    assert result.exit_code == 2
    assert "would overwrite the input" in result.output
    assert files_under(tmp_path) == {"one.py", "two.py"}


def test_in_place_replaces_the_input_and_keeps_a_bak_copy(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--in-place")

    assert result.exit_code == 0, result.output
    assert train.read_text() == CONVERTED_SCRIPT
    assert (tmp_path / "train.py.bak").read_text() == TRAINING_SCRIPT
    assert f"{train}: converted in place, original kept as {train}.bak" in result.output


def test_in_place_twice_keeps_the_original_in_the_bak_copy(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train, "--in-place")
    migrate_convert(train, "--in-place")

    assert (tmp_path / "train.py.bak").read_text() == TRAINING_SCRIPT


def test_in_place_and_o_together_are_a_usage_error(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--in-place", "-o", tmp_path / "out.py")

    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_dash_reads_stdin_and_writes_the_code_to_stdout_and_messages_to_stderr():
    result = migrate_convert("-", stdin=TRAINING_SCRIPT.encode())

    assert result.exit_code == 0, result.output
    assert result.stdout == CONVERTED_SCRIPT
    assert "<stdin>:5:5: MIG101 converted train loop" in result.stderr


def test_dash_passes_an_already_converted_script_through():
    result = migrate_convert("-", stdin=CONVERTED_SCRIPT.encode())

    assert result.exit_code == 0
    assert result.stdout == CONVERTED_SCRIPT


def test_dash_with_o_writes_that_file(tmp_path):
    result = migrate_convert("-", "-o", tmp_path / "out.py", stdin=TRAINING_SCRIPT.encode())

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.py").read_text() == CONVERTED_SCRIPT


def test_dash_cannot_be_combined_with_other_paths(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert("-", train, stdin=b"")

    assert result.exit_code == 2
    assert "cannot be combined" in result.output


# Directories


def test_a_directory_is_walked_for_py_files(tmp_path):
    for name in ("train.py", "sub/eval_loop.py", "notes.txt"):
        script(tmp_path / "project" / name)

    result = migrate_convert(tmp_path / "project")

    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "project") == {
        "train.py",
        "train_lightning.py",
        "sub/eval_loop.py",
        "sub/eval_loop_lightning.py",
        "notes.txt",
    }


def test_the_walk_skips_converted_files_hidden_directories_caches_and_virtualenvs(tmp_path):
    project = tmp_path / "project"
    script(project / "train.py")
    for name in (
        "train_lightning.py",
        ".git/hook.py",
        ".hidden.py",
        "__pycache__/train.py",
        "env/pyvenv.cfg",
        "env/lib/site.py",
    ):
        script(project / name, CONVERTED_SCRIPT)

    result = migrate_convert(project, "--check")

    assert "1 file: 1 to convert" in result.output
    assert files_under(project) == {
        "train.py",
        "train_lightning.py",
        ".git/hook.py",
        ".hidden.py",
        "__pycache__/train.py",
        "env/pyvenv.cfg",
        "env/lib/site.py",
    }


def test_the_walk_skips_the_output_directory_inside_it(tmp_path):
    script(tmp_path / "project" / "train.py")
    out = tmp_path / "project" / "converted"
    migrate_convert(tmp_path / "project", "-o", out)

    result = migrate_convert(tmp_path / "project", "-o", out)

    assert result.exit_code == 0, result.output
    assert files_under(out) == {"train.py"}


def test_files_are_processed_in_a_stable_sorted_order(tmp_path):
    for name in ("b.py", "a.py", "c/a.py"):
        script(tmp_path / name)

    result = migrate_convert(tmp_path, "--check")

    order = [line.split(":")[0] for line in result.output.splitlines() if "MIG101" in line]
    assert order == [str(tmp_path / name) for name in ("a.py", "b.py", "c/a.py")]


# --dry-run and --check


def test_dry_run_prints_a_unified_diff_and_writes_nothing(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"--- {train}\n+++ {tmp_path / 'train_lightning.py'}\n")
    assert "\n+# converted for runtime\n" in result.stdout
    assert "\n-model=torch.nn.Linear( 2,1 )\n" in result.stdout
    assert "\n+model = torch.nn.Linear(2, 1)\n" in result.stdout
    assert files_under(tmp_path) == {"train.py"}


def test_dry_run_colours_the_diff_on_a_terminal(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--dry-run", color=True)

    assert "\x1b[32m+# converted for runtime" in result.stdout
    assert "\x1b[31m-model=torch.nn.Linear( 2,1 )" in result.stdout


def test_dry_run_prints_no_colour_when_not_on_a_terminal(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--dry-run")

    assert not ANSI.search(result.output)


def test_dry_run_keeps_stdout_for_the_diff_and_messages_on_stderr(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--dry-run")

    assert "MIG101" not in result.stdout
    assert "MIG101" in result.stderr


def test_check_exits_1_and_writes_nothing_when_a_file_would_change(tmp_path):
    train = script(tmp_path / "train.py")

    result = migrate_convert(train, "--check")

    assert result.exit_code == 1
    assert f"{train}: would convert to {tmp_path / 'train_lightning.py'}" in result.output
    assert files_under(tmp_path) == {"train.py"}


def test_check_exits_0_when_nothing_would_change(tmp_path):
    done = script(tmp_path / "train.py", CONVERTED_SCRIPT)

    result = migrate_convert(done, "--check")

    assert result.exit_code == 0, result.output
    assert f"{done}: already converted, nothing to do" in result.output


def test_converting_a_converted_file_changes_nothing(tmp_path):
    train = script(tmp_path / "train.py")
    migrate_convert(train)
    written = tmp_path / "train_lightning.py"
    before = written.read_bytes()

    result = migrate_convert(written, "--in-place")

    assert result.exit_code == 0, result.output
    assert written.read_bytes() == before
    assert not (tmp_path / "train_lightning.py.bak").exists()


# What it prints


def test_findings_print_as_path_line_col_code_message(tmp_path):
    train = script(tmp_path / "train.py", TRAINING_SCRIPT + "print(1)  # review\n")

    result = migrate_convert(train)

    assert f"{train}:5:5: MIG101 converted train loop\n" in result.output
    assert f"{train}:6:1: MIG301 not converted: odd line\n" in result.output


def test_a_summary_line_counts_files_by_status_and_findings_by_severity(tmp_path):
    script(tmp_path / "a.py", TRAINING_SCRIPT + "print(1)  # review\n")
    script(tmp_path / "b.py", CONVERTED_SCRIPT)
    script(tmp_path / "c.py", NO_LOOP_SCRIPT)
    script(tmp_path / "d.py", "x = (\n")

    result = migrate_convert(tmp_path)

    assert result.output.splitlines()[-1] == (
        "4 files: 1 converted, 1 unchanged, 1 without a training loop, 1 failed; "
        "findings: 1 info, 0 warning, 1 not-converted, 1 error"
    )


def test_report_writes_the_findings_the_files_and_the_summary_as_json(tmp_path):
    train = script(tmp_path / "train.py")
    bad = script(tmp_path / "bad.py", "x = (\n")
    report = tmp_path / "report.json"

    result = migrate_convert(train, bad, "--report", report)

    document = json.loads(report.read_text())
    assert document["findings"] == [
        {
            "path": str(train),
            "line": 5,
            "col": 5,
            "code": "MIG101",
            "severity": "info",
            "message": "converted train loop",
        },
        {
            "path": str(bad),
            "line": 1,
            "col": 5,
            "code": "MIG901",
            "severity": "error",
            "message": "syntax error: '(' was never closed",
        },
    ]
    assert document["files"] == [
        {"path": str(train), "status": "converted", "output": str(tmp_path / "train_lightning.py")},
        {"path": str(bad), "status": "failed", "output": None},
    ]
    assert document["summary"] == {
        "files": 2,
        "converted": 1,
        "unchanged": 0,
        "no-training-loop": 0,
        "failed": 1,
        "findings": {"info": 1, "warning": 0, "not-converted": 0, "error": 1},
        "exit_code": result.exit_code,
    }


def test_report_with_check_records_nothing_as_written(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train, "--check", "--report", tmp_path / "report.json")

    document = json.loads((tmp_path / "report.json").read_text())
    assert document["files"] == [{"path": str(train), "status": "converted", "output": None}]


def test_a_report_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path):
    train = script(tmp_path / "train.py")
    inside_a_file = train / "report.json"

    result = migrate_convert(train, "--report", inside_a_file)

    assert result.exit_code == 1
    assert f"error: cannot write the report {inside_a_file}" in result.output


# Exit codes and bad inputs


def test_a_syntax_error_is_reported_at_file_line_col_and_exits_2(tmp_path):
    bad = script(tmp_path / "bad.py", "import torch\nfor x in range(3)\n    pass\n")

    result = migrate_convert(bad)

    assert result.exit_code == 2
    assert f"{bad}:2:18: MIG901 syntax error: expected ':'" in result.output
    assert files_under(tmp_path) == {"bad.py"}


def test_other_files_of_the_run_still_convert_after_a_syntax_error(tmp_path):
    script(tmp_path / "a_bad.py", "x = (\n")
    script(tmp_path / "b_train.py")

    result = migrate_convert(tmp_path)

    assert result.exit_code == 2
    assert files_under(tmp_path) == {"a_bad.py", "b_train.py", "b_train_lightning.py"}


def test_an_error_level_finding_exits_1_and_writes_nothing(tmp_path, monkeypatch):
    def never_done(source, path, target):
        return ConversionResult(path, Status.CONVERTED, source + "x = 1\n")

    monkeypatch.setattr(migrate.engine, "convert_code", never_done)
    train = script(tmp_path / "train.py")

    result = migrate_convert(train)

    assert result.exit_code == 1
    assert f"{train}:1:1: MIG907 converting the output again changes it" in result.output
    assert files_under(tmp_path) == {"train.py"}


def test_a_script_without_a_training_loop_exits_0_says_so_and_writes_nothing(tmp_path):
    tool = script(tmp_path / "tool.py", NO_LOOP_SCRIPT)

    result = migrate_convert(tool)

    assert result.exit_code == 0, result.output
    assert f"{tool}: no training loop found, nothing written" in result.output
    assert files_under(tmp_path) == {"tool.py"}


def test_a_file_that_is_not_utf8_gets_a_clear_message_and_exits_2(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes("# caf\xe9\n".encode("latin-1"))

    result = migrate_convert(latin)

    assert result.exit_code == 2
    assert f"{latin}:1:6: MIG902 not UTF-8 (byte 0xe9 cannot be decoded)" in result.output
    assert not isinstance(result.exception, UnicodeDecodeError)


def test_an_empty_file_gets_a_clear_message_and_exits_0(tmp_path):
    empty = script(tmp_path / "__init__.py", "")

    result = migrate_convert(empty)

    assert result.exit_code == 0, result.output
    assert f"{empty}:1:1: MIG903 empty file, nothing to convert" in result.output
    assert files_under(tmp_path) == {"__init__.py"}


def test_a_huge_file_gets_a_clear_message_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.setattr(migrate.engine, "MAX_BYTES", 64)
    train = script(tmp_path / "train.py")

    result = migrate_convert(train)

    assert result.exit_code == 2
    assert f"{train}:1:1: MIG904 file too large to convert" in result.output


# Writes


def test_the_written_file_keeps_the_input_files_mode(tmp_path):
    train = script(tmp_path / "train.py")
    train.chmod(0o751)

    migrate_convert(train)

    assert (tmp_path / "train_lightning.py").stat().st_mode & 0o777 == 0o751


def test_in_place_keeps_the_mode_of_the_input_and_of_its_backup(tmp_path):
    train = script(tmp_path / "train.py")
    train.chmod(0o700)

    migrate_convert(train, "--in-place")

    assert train.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "train.py.bak").stat().st_mode & 0o777 == 0o700


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    train = script(tmp_path / "train.py")
    old = script(tmp_path / "train_lightning.py", "old = True\n")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(migrate.writes.os, "fsync", disk_full)

    result = migrate_convert(train)

    assert result.exit_code == 1
    assert f"{train}:1:1: MIG909 cannot write {old}: No space left on device" in result.output
    assert old.read_text() == "old = True\n"
    assert files_under(tmp_path) == {"train.py", "train_lightning.py"}


# Formatting and target


def test_the_output_is_formatted_with_black(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train)

    assert "model = torch.nn.Linear(2, 1)\n" in (tmp_path / "train_lightning.py").read_text()


def test_no_format_leaves_the_output_as_the_converter_wrote_it(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train, "--no-format")

    written = (tmp_path / "train_lightning.py").read_text()
    assert written == "# converted for runtime\n" + TRAINING_SCRIPT


def test_target_lightning_reaches_the_converter(tmp_path):
    train = script(tmp_path / "train.py")

    migrate_convert(train, "--target", "lightning")

    assert (tmp_path / "train_lightning.py").read_text().startswith("# converted for lightning")


def test_an_unknown_target_is_a_usage_error(tmp_path):
    train = script(tmp_path / "train.py")

    assert migrate_convert(train, "--target", "keras").exit_code == 2


# -j


def test_j_converts_in_that_many_worker_processes(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    pids.mkdir()

    def recording_pid(source, path, target):
        (pids / str(os.getpid())).touch()
        return convert_code(source, path, target)

    monkeypatch.setattr(migrate.engine, "convert_code", recording_pid)
    for name in "abcd":
        script(tmp_path / "project" / f"{name}.py")

    result = migrate_convert(tmp_path / "project", "-j", "2")

    assert result.exit_code == 0, result.output
    workers = {int(pid.name) for pid in pids.iterdir()}
    assert os.getpid() not in workers
    assert 1 <= len(workers) <= 2


def test_j_gives_the_same_output_in_the_same_order_as_one_process(tmp_path):
    for index in range(6):
        script(tmp_path / "one" / f"s{index}.py", TRAINING_SCRIPT + "x = 1  # review\n" * index)
    script(tmp_path / "one" / "bad.py", "x = (\n")
    (tmp_path / "two").mkdir()
    for path in (tmp_path / "one").iterdir():
        (tmp_path / "two" / path.name).write_bytes(path.read_bytes())

    serial = migrate_convert(tmp_path / "one", "-j", "1")
    parallel = migrate_convert(tmp_path / "two", "-j", "3")

    assert parallel.exit_code == serial.exit_code == 2
    assert parallel.output == serial.output.replace(str(tmp_path / "one"), str(tmp_path / "two"))
    for index in range(6):
        name = f"s{index}_lightning.py"
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()
