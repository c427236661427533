"""Runs one fixture script to the end and records what it reported, for tests/test_fixtures.py.

Usage: python tests/fixture_runner.py SCRIPT RESULT_JSON [--fake-data]

It runs SCRIPT as `__main__` (CPU only, torchvision downloads replaced by
`migrate.fake_datasets` with --fake-data) and writes RESULT_JSON with:
- "stdout": everything the script printed (logging output included);
- "metrics": `trainer.callback_metrics` as floats, read after each `Trainer.fit`, `validate`
  and `test` call and merged (each stage starts with the metrics of the previous one cleared).
A child process of its own, so that each script starts from a fresh interpreter and RNG state.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import runpy
import sys
from pathlib import Path


def _record_metrics(metrics: dict[str, float]) -> None:
    """Wraps the runtime Trainer's entry points to copy `callback_metrics` after each run."""
    import runtime

    for name in ("fit", "validate", "test"):
        original = getattr(runtime.Trainer, name)

        def wrapped(self, *args, __original=original, **kwargs):
            result = __original(self, *args, **kwargs)
            for key, value in self.callback_metrics.items():
                metrics[key] = float(value)
            return result

        setattr(runtime.Trainer, name, wrapped)


def main() -> None:
    script, result_path = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    fake_data = "--fake-data" in sys.argv[3:]
    metrics: dict[str, float] = {}
    _record_metrics(metrics)
    out = io.StringIO()
    logging.basicConfig(stream=out, level=logging.INFO, format="%(message)s", force=True)
    datasets = contextlib.nullcontext()
    if fake_data:
        from migrate.fake_datasets import offline_datasets

        datasets = offline_datasets()
    sys.argv = [str(script)]
    sys.path[0] = str(script.parent)
    with datasets, contextlib.redirect_stdout(out):
        runpy.run_path(str(script), run_name="__main__")
    result_path.write_text(json.dumps({"stdout": out.getvalue(), "metrics": metrics}))


if __name__ == "__main__":
    main()
