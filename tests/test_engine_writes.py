"""Atomic writes and diffs: the last step before the user's disk or terminal."""

import os

import click
import pytest

import migrate.writes
from migrate.writes import unified_diff, write_atomic


def test_an_atomic_write_creates_missing_directories_with_the_given_mode(tmp_path):
    target = tmp_path / "a" / "b" / "out.py"

    write_atomic(target, b"x = 1\n", 0o640)

    assert target.read_bytes() == b"x = 1\n"
    assert target.stat().st_mode & 0o777 == 0o640


def test_an_atomic_write_that_fails_at_the_rename_leaves_the_old_file_alone(tmp_path, monkeypatch):
    target = tmp_path / "out.py"
    target.write_bytes(b"old\n")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate.writes.os, "replace", interrupted)

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"new\n", 0o644)

    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["out.py"]


def test_bytes_are_written_as_given_so_crlf_line_endings_survive(tmp_path):
    target = tmp_path / "out.py"

    write_atomic(target, b"x = 1\r\n", 0o644)

    assert target.read_bytes() == b"x = 1\r\n"


def test_a_diff_marks_a_missing_final_newline():
    diff = click.unstyle(unified_diff("x = 1", "x = 2\n", "a.py", "b.py"))

    assert diff.splitlines() == [
        "--- a.py",
        "+++ b.py",
        "@@ -1 +1 @@",
        "-x = 1",
        "\\ No newline at end of file",
        "+x = 2",
    ]
