"""The fixture goldens: what `migrate convert fixtures/<case>/original.py` must produce.

Run `python tests/fixture_goldens.py` to (re)write every `expected.py` and
`expected_report.txt` from the current converter; then read the diff before committing it.

`expected_report.txt` holds the lines the CLI prints for the file, in order: each finding as
`original.py:LINE:COL: CODE message`, then the summary line, with colours stripped. The
path is always shown as `original.py` (the file's name inside its fixture directory), so the
goldens do not depend on where the repository lives. The CLI's "wrote ..." line is left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT))

from migrate.engine import convert_source  # noqa: E402
from migrate.findings import ConversionResult  # noqa: E402
from migrate.report import Outcome, summary, summary_line  # noqa: E402

REPORT_PATH = "original.py"


def cases() -> list[str]:
    return sorted(d.name for d in FIXTURES.iterdir() if (d / "original.py").is_file())


def needs_fake_data(case: str) -> bool:
    """The fixture's README says so when it downloads a torchvision dataset."""
    readme = FIXTURES / case / "README.md"
    return readme.is_file() and "--fake-data" in readme.read_text()


def convert(case: str) -> ConversionResult:
    return convert_source((FIXTURES / case / "original.py").read_text(), REPORT_PATH)


def report_text(result: ConversionResult) -> str:
    lines = [finding.format() for finding in result.findings]
    lines.append(click.unstyle(summary_line(summary([Outcome(result, REPORT_PATH)], False), True)))
    return "\n".join(lines) + "\n"


def regenerate() -> None:
    for case in cases():
        result = convert(case)
        if result.output is None:
            raise SystemExit(f"{case}: not converted ({result.status.value})")
        (FIXTURES / case / "expected.py").write_text(result.output)
        (FIXTURES / case / "expected_report.txt").write_text(report_text(result))
        print(f"{case}: {len(result.findings)} findings")


if __name__ == "__main__":
    regenerate()
