"""Every fixture's original.py is a working plain-PyTorch script.

Each one must run to its end, seeded and on CPU, in an empty working directory, with the
offline dataset stand-ins when its README says "needs --fake-data", after at least
MIN_STEPS backward calls, so that a 50-step equivalence check of its conversion means
something.

Starting a process that imports torch costs seconds, so rather than one process per
script (as `migrate verify` does), a few child processes each run a share of the scripts
one after another. The child is this file run as a script; see `_run_cases` at the end.
"""

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = sorted(
    path.name for path in FIXTURES.iterdir() if (path / "original.py").is_file()
)
MIN_CASES = 12
MIN_STEPS = 50
SEED = 0
FRAMEWORK_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(?:lightning|pytorch_lightning|runtime)\b", re.MULTILINE
)


def needs_fake_data(case: str) -> bool:
    return "needs --fake-data" in (FIXTURES / case / "README.md").read_text()


def _run_share(cases: list[str], scratch: Path) -> dict:
    result_path = scratch / "results.json"
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
    root = str(FIXTURES.parent)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, environment.get("PYTHONPATH")) if p
    )
    completed = subprocess.run(
        [sys.executable, __file__, str(result_path), *cases],
        cwd=scratch,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if not result_path.exists():
        error = f"the runner exited with status {completed.returncode}:\n{completed.stderr[-4000:]}"
        return {case: {"steps": 0, "error": error} for case in cases}
    return json.loads(result_path.read_text())


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory):
    workers = max(2, min(os.cpu_count() or 1, 8))
    # Round-robin over cases sorted with the dataset ones first, so each share gets some.
    ordered = sorted(CASES, key=lambda case: not needs_fake_data(case))
    shares = [ordered[index::workers] for index in range(workers)]
    shares = [share for share in shares if share]
    scratches = [
        tmp_path_factory.mktemp(f"share{index}") for index in range(len(shares))
    ]
    with ThreadPoolExecutor(max_workers=len(shares)) as pool:
        results = {}
        for share_results in pool.map(_run_share, shares, scratches):
            results.update(share_results)
    return results


def test_there_are_enough_cases():
    assert len(CASES) >= MIN_CASES


def test_at_least_two_cases_download_a_torchvision_dataset():
    downloads = [
        case
        for case in CASES
        if needs_fake_data(case)
        and "download=True" in (FIXTURES / case / "original.py").read_text()
    ]
    assert len(downloads) >= 2


@pytest.mark.parametrize("case", CASES)
def test_each_case_has_a_one_line_readme_on_its_style(case):
    lines = (FIXTURES / case / "README.md").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].strip()


@pytest.mark.parametrize("case", CASES)
def test_original_is_plain_pytorch(case):
    path = FIXTURES / case / "original.py"
    source = path.read_text()
    compile(source, str(path), "exec")
    assert not FRAMEWORK_IMPORT.search(source)


@pytest.mark.parametrize("case", CASES)
def test_original_runs_to_the_end_with_enough_steps(case, full_runs):
    run = full_runs[case]
    assert run["error"] is None, run["error"]
    assert run["steps"] >= MIN_STEPS


def _run_cases(result_path: str, cases: list[str]) -> None:
    """The child: runs each case's original.py as `python original.py` would, in turn.

    Per case: a fresh empty working directory, the script's folder first on sys.path, no
    arguments, every RNG seeded with SEED (as `migrate verify` does), and the backward
    calls counted through `torch.autograd.backward`, which `Tensor.backward` goes through.
    """
    import random
    import runpy
    import tempfile
    import traceback
    from contextlib import nullcontext

    import numpy as np
    import torch

    # The shares run side by side, one per core: one thread each avoids oversubscription.
    torch.set_num_threads(1)
    real_backward = torch.autograd.backward
    steps = 0

    def counting_backward(*args, **kwargs):
        nonlocal steps
        steps += 1
        return real_backward(*args, **kwargs)

    torch.autograd.backward = counting_backward
    results = {}
    for case in cases:
        script = FIXTURES / case / "original.py"
        steps, error = 0, None
        if needs_fake_data(case):
            from migrate.fake_datasets import offline_datasets

            datasets = offline_datasets()
        else:
            datasets = nullcontext()
        with tempfile.TemporaryDirectory(prefix=f"fixture-{case}-") as workdir:
            os.chdir(workdir)
            sys.argv = [str(script)]
            sys.path[0] = str(script.parent)
            random.seed(SEED)
            np.random.seed(SEED)
            torch.manual_seed(SEED)
            try:
                with datasets:
                    runpy.run_path(str(script), run_name="__main__")
            except SystemExit as stop:
                if stop.code not in (None, 0):
                    error = f"exited with status {stop.code}"
            except Exception:
                error = traceback.format_exc()[-4000:]
            os.chdir(FIXTURES)
        results[case] = {"steps": steps, "error": error}
    Path(result_path).write_text(json.dumps(results))


if __name__ == "__main__":
    _run_cases(sys.argv[1], sys.argv[2:])
