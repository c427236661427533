"""Shared pytest configuration: a GPU marker that skips cleanly on CPU-only machines."""

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _run_in_tmp_dir(tmp_path, monkeypatch):
    """Trainers write lightning_logs/ into the working directory by default; keep the repo clean."""
    monkeypatch.chdir(tmp_path)
