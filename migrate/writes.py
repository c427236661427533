"""Putting converted code on disk or on screen without ever leaving a half-written file.

A crash, a full disk or Ctrl-C mid-write must leave either the old file or the new one,
so every write goes to a temporary file in the destination's directory (same filesystem,
so the final rename is atomic), is fsynced, and only then replaces the destination.
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from pathlib import Path

import click


def default_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def file_mode(path: Path) -> int:
    """Permission bits of `path`, so a converted (or backed-up) script stays executable."""
    return stat.S_IMODE(path.stat().st_mode)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replaces `path` with `data` in one step; on any failure the temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_DIFF_COLOURS = {"+": "green", "-": "red", "@": "cyan"}


def unified_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    """A unified diff styled for a terminal; `click.echo` drops the colours when not on one."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=before_name,
        tofile=after_name,
    )
    styled = []
    for line in lines:
        text = line.rstrip("\n")
        header = line.startswith(("---", "+++"))
        colour = None if header else _DIFF_COLOURS.get(line[0])
        styled.append(
            click.style(text, fg=colour, bold=header or None) if colour or header else text
        )
        if not line.endswith("\n"):
            styled.append("\\ No newline at end of file")
    return "".join(f"{line}\n" for line in styled)
